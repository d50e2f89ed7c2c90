SELECT CAST(updated_at AS DATE) AS day,
       count(*) AS orders,
       date_trunk('month', max(updated_at)) AS last_month
FROM shop.orders
GROUP BY 1
