SELECT customer_idd AS customer_id, name
FROM customer_orders
WHERE orders > 10
