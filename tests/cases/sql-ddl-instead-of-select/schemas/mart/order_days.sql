-- clean up first
DROP TABLE shop.orders
