-- A revision number for each client's governance view (issue 13, the token
-- path's cost). Every write that can change what the policy sees about a
-- client — its own row, its owners, its approvals, its metadata versions,
-- an owner's account — moves `clients.governance_rev`, by trigger, in the
-- writer's own transaction. A node may then keep a client's view and reuse
-- it while the revision it reads with the client's row is unchanged: a
-- change on any node is seen by every node at its next read of the row.
-- Triggers rather than application code, so no write path can forget.
-- Keep equivalent to migrations/sqlite/0009_governance_revision.sql.

ALTER TABLE clients ADD COLUMN governance_rev BIGINT NOT NULL DEFAULT 0;

-- The client row itself: any update that does not already move the
-- revision moves it.
CREATE FUNCTION steward_client_rev_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.governance_rev = OLD.governance_rev THEN
        NEW.governance_rev := OLD.governance_rev + 1;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER clients_governance_rev BEFORE UPDATE ON clients
    FOR EACH ROW EXECUTE FUNCTION steward_client_rev_on_update();

-- Rows that belong to one client (owners, approvals, metadata versions).
CREATE FUNCTION steward_client_rev_of_child() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = OLD.client_id;
        RETURN OLD;
    END IF;
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = NEW.client_id;
    IF TG_OP = 'UPDATE' AND OLD.client_id <> NEW.client_id THEN
        UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = OLD.client_id;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER client_owners_governance_rev AFTER INSERT OR UPDATE OR DELETE ON client_owners
    FOR EACH ROW EXECUTE FUNCTION steward_client_rev_of_child();
CREATE TRIGGER approvals_governance_rev AFTER INSERT OR UPDATE OR DELETE ON approvals
    FOR EACH ROW EXECUTE FUNCTION steward_client_rev_of_child();
CREATE TRIGGER client_metadata_versions_governance_rev AFTER INSERT OR UPDATE OR DELETE ON client_metadata_versions
    FOR EACH ROW EXECUTE FUNCTION steward_client_rev_of_child();

-- An owner's account: disabling it hands the client to the next owner, and
-- the view names owners by username.
CREATE FUNCTION steward_client_rev_of_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.disabled IS DISTINCT FROM OLD.disabled OR NEW.username IS DISTINCT FROM OLD.username THEN
        UPDATE clients SET governance_rev = governance_rev + 1
            WHERE client_id IN (SELECT client_id FROM client_owners WHERE user_id = NEW.id);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER users_governance_rev AFTER UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION steward_client_rev_of_owner();
