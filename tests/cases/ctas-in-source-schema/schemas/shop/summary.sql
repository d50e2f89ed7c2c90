SELECT count(*) AS n FROM shop.orders
