SELECT customer_id, name, revenue
FROM mart.big_customers
