SELECT CAST(updated_at AS DATE) AS day, count(*) AS orders
FROM shop.orders
GROUP BY 1;
SELECT 1 AS x;
