-- Clients by display name (issue 14 §4): the consent page warns when a
-- registered client's name is also used by another client, and must find
-- those few clients without reading the whole inventory (which an open
-- registration endpoint lets anyone grow). The expression is the one
-- list_clients compares with; see steward_store::name_key.
-- Keep equivalent to migrations/postgres/0011_client_name_index.sql.

CREATE INDEX clients_name_key ON clients (lower(trim(display_name)));
