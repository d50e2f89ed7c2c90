SELECT day, orders
-- reads itself
FROM mart.order_days
