SELECT c.id AS customer_id,
       c.name,
       count(o.id) AS orders,
       sum(o.amount) AS revenue
FROM shop.customers AS c
LEFT JOIN shop.orders AS o ON o.customer_id = c.id
GROUP BY c.id, c.name
