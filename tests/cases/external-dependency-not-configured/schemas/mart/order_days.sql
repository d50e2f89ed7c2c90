SELECT CAST(updated_at AS DATE) AS day, count(*) AS orders
FROM shop.orders
JOIN legacy.calendar AS cal ON cal.day = CAST(updated_at AS DATE)
GROUP BY 1
