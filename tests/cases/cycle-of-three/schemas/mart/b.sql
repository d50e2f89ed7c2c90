SELECT * FROM mart.a
