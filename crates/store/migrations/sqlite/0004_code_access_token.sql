-- The access token a code's redemption issued, so that a replay of the code
-- revokes exactly what that code produced (OAuth 2.1 §4.1.3, RFC 9700 §4.5)
-- even when the client got no refresh token. Before this column a replay
-- without a refresh family revoked every access token of the grant,
-- including those of earlier codes.
ALTER TABLE authorization_codes ADD COLUMN access_jti TEXT;
