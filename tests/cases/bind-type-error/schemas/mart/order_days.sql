SELECT CAST(updated_at AS DATE) AS day,
       count(*) AS orders,
       max(note) + 1 AS latest
FROM shop.orders
GROUP BY 1
