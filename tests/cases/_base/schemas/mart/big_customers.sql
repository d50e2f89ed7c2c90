SELECT customer_id, name
FROM customer_orders
WHERE orders > 10
