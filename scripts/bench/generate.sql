-- Seeded benchmark data, generated inside PostgreSQL (no per-row round trips).
-- psql variables: users (count), rows, cols (card size).
--   10 clients; per client a 4-level unit tree (1 root, 4, 16, 64 leaves = 85 units);
--   users 0..users-1: user n in client n % 10 under leaf (n / 10) % 64, with one card each;
--   every 10th user also holds an older active card, every 20th (n % 20 = 5) a newer
--   archived one; 20 callers in client-0 with every kind of data room (see wrk.lua).
-- Card codes: one digest repeated per card. The challenge path never reads them; real cards
-- hold distinct digests (TOASTed), which only changes the table's size on disk.
\set ON_ERROR_STOP on
BEGIN;
SELECT setseed(0.20261203) AS seeded \gset
ALTER TABLE otp_cards DISABLE TRIGGER otp_cards_at_most_two;

INSERT INTO clients (id, ext_id, name, coordinate_card_format, challenge_lifetime_seconds)
SELECT md5('client' || c)::uuid, 'client-' || c, 'Client ' || c, c % 2 = 0, 0
FROM generate_series(0, 9) c;

CREATE TEMP TABLE tree ON COMMIT DROP AS
SELECT c, leaf,
       md5('unit' || c || '-0')::uuid AS u0,
       md5('unit' || c || '-1-' || leaf / 16)::uuid AS u1,
       md5('unit' || c || '-2-' || leaf / 4)::uuid AS u2,
       md5('unit' || c || '-3-' || leaf)::uuid AS u3
FROM generate_series(0, 9) c, generate_series(0, 63) leaf;

INSERT INTO units (id, client_id, ext_id, name, parent_id, path)
SELECT DISTINCT u0, md5('client' || c)::uuid, 'root', 'Head office', NULL::uuid, ARRAY[u0]
FROM tree;
INSERT INTO units (id, client_id, ext_id, name, parent_id, path)
SELECT DISTINCT u1, md5('client' || c)::uuid, 'l1-' || leaf / 16, 'Region ' || leaf / 16, u0, ARRAY[u0, u1]
FROM tree;
INSERT INTO units (id, client_id, ext_id, name, parent_id, path)
SELECT DISTINCT u2, md5('client' || c)::uuid, 'l2-' || leaf / 4, 'Branch ' || leaf / 4, u1, ARRAY[u0, u1, u2]
FROM tree;
INSERT INTO units (id, client_id, ext_id, name, parent_id, path)
SELECT u3, md5('client' || c)::uuid, 'l3-' || leaf, 'Desk ' || leaf, u2, ARRAY[u0, u1, u2, u3]
FROM tree;

INSERT INTO users (id, client_id, unit_id, ext_id, login_id)
SELECT md5('user' || n)::uuid, md5('client' || n % 10)::uuid,
       md5('unit' || n % 10 || '-3-' || (n / 10) % 64)::uuid, 'user-' || n, 'login-' || n
FROM generate_series(0, :users - 1) n;

INSERT INTO users (id, client_id, unit_id, ext_id, login_id)
SELECT md5('caller' || k)::uuid, md5('client0')::uuid, md5('unit0-0')::uuid,
       'caller-' || k, 'caller-' || k
FROM generate_series(1, 20) k;

INSERT INTO otp_cards (id, client_id, user_id, ext_id, state, valid_from, valid_to, created_at,
                       grid_rows, grid_columns, code_hashes, used_cells)
SELECT md5('card' || n || kind)::uuid, md5('client' || n % 10)::uuid, md5('user' || n)::uuid,
       'card-' || n || kind,
       CASE kind WHEN '-archived' THEN 'archived' ELSE 'active' END,
       timestamptz '2026-01-01', timestamptz '2036-01-01',
       timestamptz '2026-06-01' + CASE kind WHEN '' THEN 0 WHEN '-old' THEN -100 ELSE 100 END * interval '1 day',
       :rows, :cols,
       array_fill(sha256(('card' || n)::bytea), ARRAY[:rows * :cols]),
       ARRAY[(n * 7) % (:rows * :cols), (n * 13 + 1) % (:rows * :cols), (n * 31 + 2) % (:rows * :cols)]::int2[]
FROM generate_series(0, :users - 1) n,
     LATERAL (VALUES (''), ('-old'), ('-archived')) v(kind)
WHERE kind = '' OR (kind = '-old' AND n % 10 = 0) OR (kind = '-archived' AND n % 20 = 5);

INSERT INTO roles (id, name) VALUES (md5('role')::uuid, 'Helpdesk');
INSERT INTO role_rights (role_id, right_name) VALUES (md5('role')::uuid, 'AccessControl.CredentialView');

-- caller 1..5: global/global; 6..10: client k-6, all units; 11..15: all clients, level-2 unit
-- l2-(k-11) of client k-11; 16..20: client k-11, level-1 unit l1-((k-16)%4) of that client.
INSERT INTO authorizations (id, user_id, role_id, all_clients, all_units)
SELECT md5('auth' || k)::uuid, md5('caller' || k)::uuid, md5('role')::uuid,
       k <= 5 OR k BETWEEN 11 AND 15, k <= 10
FROM generate_series(1, 20) k;
INSERT INTO authorization_clients (authorization_id, client_id)
SELECT md5('auth' || k)::uuid, md5('client' || CASE WHEN k <= 10 THEN k - 6 ELSE k - 11 END)::uuid
FROM generate_series(6, 20) k WHERE k <= 10 OR k >= 16;
INSERT INTO authorization_units (authorization_id, unit_id)
SELECT md5('auth' || k)::uuid,
       CASE WHEN k <= 15 THEN md5('unit' || k - 11 || '-2-' || k - 11)::uuid
            ELSE md5('unit' || k - 11 || '-1-' || (k - 16) % 4)::uuid END
FROM generate_series(11, 20) k;

ALTER TABLE otp_cards ENABLE TRIGGER otp_cards_at_most_two;
COMMIT;
ANALYZE clients, units, users, otp_cards, roles, role_rights, authorizations,
        authorization_clients, authorization_units;
