-- Clients (tenants) with their OTP policy: one policy per client, every field defaulted.
CREATE TABLE clients (
    id uuid PRIMARY KEY,
    ext_id text NOT NULL UNIQUE CHECK (octet_length(ext_id) BETWEEN 1 AND 255),
    name text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 255),
    coordinate_card_format boolean NOT NULL DEFAULT false,
    challenge_lifetime_seconds integer NOT NULL DEFAULT 120 CHECK (challenge_lifetime_seconds >= 0),
    low_on_challenges_threshold integer NOT NULL DEFAULT 20
        CHECK (low_on_challenges_threshold BETWEEN 0 AND 2574)
);

-- Units form a tree per client. `path` lists the unit's ancestors from the root down to the
-- unit itself, so "does a data room listing unit X cover unit Y" is one array overlap, not a
-- walk up the tree.
CREATE TABLE units (
    id uuid PRIMARY KEY,
    client_id uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    ext_id text NOT NULL CHECK (octet_length(ext_id) BETWEEN 1 AND 255),
    name text NOT NULL,
    parent_id uuid,
    path uuid[] NOT NULL CHECK (cardinality(path) >= 1),
    UNIQUE (client_id, ext_id),
    UNIQUE (client_id, id),
    FOREIGN KEY (client_id, parent_id) REFERENCES units (client_id, id),
    CHECK (path[cardinality(path)] = id),
    CHECK (parent_id IS DISTINCT FROM id)
);

CREATE TABLE users (
    id uuid PRIMARY KEY,
    client_id uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    unit_id uuid NOT NULL,
    ext_id text NOT NULL CHECK (octet_length(ext_id) BETWEEN 1 AND 255),
    login_id text NOT NULL CHECK (octet_length(login_id) BETWEEN 1 AND 255),
    UNIQUE (client_id, ext_id),
    UNIQUE (client_id, login_id),
    UNIQUE (client_id, id),
    -- A user's unit belongs to the user's client.
    FOREIGN KEY (client_id, unit_id) REFERENCES units (client_id, id)
);

-- OTP card credentials (type id 6). Cell codes are stored only as HMAC-SHA256 digests.
CREATE TABLE otp_cards (
    id uuid PRIMARY KEY,
    client_id uuid NOT NULL,
    user_id uuid NOT NULL,
    ext_id text NOT NULL CHECK (octet_length(ext_id) BETWEEN 1 AND 255),
    state text NOT NULL CHECK (state IN ('initial', 'active', 'tmp-locked', 'fail-locked',
                                         'reset-code', 'admin-changed', 'disabled', 'archived')),
    valid_from timestamptz,
    valid_to timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Insertion order, to break ties between cards created at the same instant.
    seq bigint GENERATED ALWAYS AS IDENTITY,
    grid_rows smallint NOT NULL CHECK (grid_rows BETWEEN 1 AND 99),
    grid_columns smallint NOT NULL CHECK (grid_columns BETWEEN 1 AND 26),
    code_hashes bytea[] NOT NULL,
    used_cells smallint[] NOT NULL DEFAULT '{}',
    -- The pending challenge: one per card by construction.
    challenge_cell smallint,
    challenge_issued_at timestamptz,
    -- Changed by every write; the challenge store is a compare-and-set on it.
    version bigint NOT NULL DEFAULT 0,
    UNIQUE (client_id, ext_id),
    FOREIGN KEY (client_id, user_id) REFERENCES users (client_id, id) ON DELETE CASCADE,
    CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to),
    CHECK (cardinality(code_hashes) = grid_rows * grid_columns),
    CHECK (0 <= ALL (used_cells) AND grid_rows * grid_columns > ALL (used_cells)),
    CHECK ((challenge_cell IS NULL) = (challenge_issued_at IS NULL)),
    CHECK (challenge_cell IS NULL OR challenge_cell BETWEEN 0 AND grid_rows * grid_columns - 1)
);

-- The hot-path lookup: a user's most recent card that is not archived.
CREATE INDEX otp_cards_most_recent ON otp_cards (user_id, created_at DESC, seq DESC)
    WHERE state <> 'archived';

-- Spec 2.1: a user holds at most two OTP cards that are not archived. The user's row is
-- locked first so two concurrent inserts cannot both pass the count.
CREATE FUNCTION otp_cards_at_most_two() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> 'archived' THEN
        PERFORM 1 FROM users WHERE id = NEW.user_id FOR UPDATE;
        IF (SELECT count(*) FROM otp_cards
            WHERE user_id = NEW.user_id AND state <> 'archived' AND id <> NEW.id) >= 2 THEN
            RAISE EXCEPTION 'user % already holds two OTP cards that are not archived', NEW.user_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'otp_cards_at_most_two';
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER otp_cards_at_most_two
    BEFORE INSERT OR UPDATE OF state, user_id ON otp_cards
    FOR EACH ROW EXECUTE FUNCTION otp_cards_at_most_two();

CREATE TABLE roles (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (octet_length(name) BETWEEN 1 AND 255)
);

CREATE TABLE role_rights (
    role_id uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    right_name text NOT NULL CHECK (octet_length(right_name) BETWEEN 1 AND 255),
    PRIMARY KEY (role_id, right_name)
);

-- A role assigned to a caller, limited by a client data room and a unit data room; each is
-- global (the flag) or the listed rows of authorization_clients / authorization_units.
CREATE TABLE authorizations (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    all_clients boolean NOT NULL,
    all_units boolean NOT NULL,
    UNIQUE (user_id, role_id)
);

CREATE TABLE authorization_clients (
    authorization_id uuid NOT NULL REFERENCES authorizations (id) ON DELETE CASCADE,
    client_id uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    PRIMARY KEY (authorization_id, client_id)
);

CREATE TABLE authorization_units (
    authorization_id uuid NOT NULL REFERENCES authorizations (id) ON DELETE CASCADE,
    unit_id uuid NOT NULL REFERENCES units (id) ON DELETE CASCADE,
    PRIMARY KEY (authorization_id, unit_id)
);

CREATE INDEX role_rights_by_right ON role_rights (right_name, role_id);
