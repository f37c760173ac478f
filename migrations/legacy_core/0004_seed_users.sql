-- INPUTT/123456, the classic T24 input user (SHA-256 of "123456").
INSERT INTO users (name, password_sha256)
VALUES ('INPUTT', '8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92')
ON CONFLICT (name) DO NOTHING;
