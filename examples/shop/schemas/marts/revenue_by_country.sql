-- Monthly revenue per country, with each country's share of the month.
WITH monthly AS (
    SELECT
        country,
        CAST(date_trunc('month', order_date) AS DATE) AS month,
        count(*) AS orders,
        count(DISTINCT customer_id) AS customers,
        CAST(sum(order_total) AS DECIMAL(18, 2)) AS revenue
    FROM analytics.orders_enriched
    WHERE is_revenue
    GROUP BY country, CAST(date_trunc('month', order_date) AS DATE)
)
SELECT
    month,
    country,
    orders,
    customers,
    revenue,
    CAST(round(revenue / customers, 2) AS DECIMAL(12, 2)) AS revenue_per_customer,
    round(100 * revenue / sum(revenue) OVER (PARTITION BY month), 1) AS share_of_month_pct
FROM monthly
ORDER BY month, revenue DESC
