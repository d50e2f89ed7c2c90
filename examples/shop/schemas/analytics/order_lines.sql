-- One row per order line, with its product and its value after the line discount.
-- Money stays DECIMAL throughout: quantity * price * (100 - pct) * 0.01 is exact,
-- and round(..., 2) rounds half away from zero, like the checkout does.
SELECT
    oi.order_item_id,
    oi.order_id,
    oi.product_id,
    p.sku,
    p.name AS product_name,
    p.category,
    oi.quantity,
    oi.unit_price,
    CAST(coalesce(oi.discount_pct, 0) AS DECIMAL(5, 2)) AS discount_pct,
    CAST(oi.quantity * oi.unit_price AS DECIMAL(12, 2)) AS gross_amount,
    CAST(
        round(oi.quantity * oi.unit_price * (100 - coalesce(oi.discount_pct, 0)) * 0.01, 2)
        AS DECIMAL(12, 2)
    ) AS line_total
FROM shop.order_items AS oi
JOIN shop.products AS p ON p.product_id = oi.product_id
