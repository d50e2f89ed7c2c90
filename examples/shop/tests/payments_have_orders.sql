-- A custom assertion: its rows are the failures. Every payment belongs to an order.
SELECT p.payment_id, p.order_id, p.amount
FROM shop.payments AS p
LEFT JOIN shop.orders AS o ON o.order_id = p.order_id
WHERE o.order_id IS NULL
