-- The countries' shares of a month's revenue add up to 100 % (rounding aside).
SELECT month, sum(share_of_month_pct) AS total_pct
FROM marts.revenue_by_country
GROUP BY month
HAVING abs(sum(share_of_month_pct) - 100) > 0.5
