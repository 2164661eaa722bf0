-- A revision number for each client's governance view (issue 13, the token
-- path's cost). Every write that can change what the policy sees about a
-- client — its own row, its owners, its approvals, its metadata versions,
-- an owner's account — moves `clients.governance_rev`, by trigger, in the
-- writer's own transaction. A node may then keep a client's view and reuse
-- it while the revision it reads with the client's row is unchanged.
-- Triggers rather than application code, so no write path can forget.
-- Keep equivalent to migrations/postgres/0009_governance_revision.sql.
--
-- The WHEN clause of the first trigger also stops it re-firing on its own
-- update, should recursive triggers ever be turned on.

ALTER TABLE clients ADD COLUMN governance_rev INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER clients_governance_rev AFTER UPDATE ON clients
    WHEN NEW.governance_rev = OLD.governance_rev
BEGIN
    UPDATE clients SET governance_rev = OLD.governance_rev + 1 WHERE client_id = NEW.client_id;
END;

CREATE TRIGGER client_owners_rev_insert AFTER INSERT ON client_owners BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = NEW.client_id;
END;
CREATE TRIGGER client_owners_rev_update AFTER UPDATE ON client_owners BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id IN (OLD.client_id, NEW.client_id);
END;
CREATE TRIGGER client_owners_rev_delete AFTER DELETE ON client_owners BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = OLD.client_id;
END;

CREATE TRIGGER approvals_rev_insert AFTER INSERT ON approvals BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = NEW.client_id;
END;
CREATE TRIGGER approvals_rev_update AFTER UPDATE ON approvals BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id IN (OLD.client_id, NEW.client_id);
END;
CREATE TRIGGER approvals_rev_delete AFTER DELETE ON approvals BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = OLD.client_id;
END;

CREATE TRIGGER client_metadata_versions_rev_insert AFTER INSERT ON client_metadata_versions BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = NEW.client_id;
END;
CREATE TRIGGER client_metadata_versions_rev_update AFTER UPDATE ON client_metadata_versions BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id IN (OLD.client_id, NEW.client_id);
END;
CREATE TRIGGER client_metadata_versions_rev_delete AFTER DELETE ON client_metadata_versions BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1 WHERE client_id = OLD.client_id;
END;

CREATE TRIGGER users_governance_rev AFTER UPDATE OF disabled, username ON users
    WHEN NEW.disabled IS NOT OLD.disabled OR NEW.username IS NOT OLD.username
BEGIN
    UPDATE clients SET governance_rev = governance_rev + 1
        WHERE client_id IN (SELECT client_id FROM client_owners WHERE user_id = NEW.id);
END;
