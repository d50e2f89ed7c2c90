SELECT * FROM mart.c
