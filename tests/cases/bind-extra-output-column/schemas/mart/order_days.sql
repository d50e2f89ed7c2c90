SELECT * FROM mart.customer_orders
