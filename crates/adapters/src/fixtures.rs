//! The JSON fixture format and its loader: how the integration-test harness and local runs
//! put data in. One file, one transaction, upserted by natural key (ext id, role name, user
//! and role of an authorization), so loading the same file twice changes nothing. Anything
//! invalid aborts the whole load with the offending entry named; nothing is written.
//!
//! The format is documented in `docs/fixtures.md`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, Bool, Bytea, Int2, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use idm_otp_domain::{
    ClientExtId, CredentialExtId, CredentialState, GridSize, OtpCard, UnitExtId, UserExtId,
    ValidityPeriod,
};
use rand::RngExt;
use serde::Deserialize;
use uuid::Uuid;

use crate::card_codes::CardCodeHasher;
use crate::schema::{authorizations, clients, otp_cards, roles, units, users};

/// A fixture file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FixtureDocument {
    /// Clients (tenants).
    #[serde(default)]
    pub clients: Vec<ClientFixture>,
    /// Units; a parent may come before or after its children.
    #[serde(default)]
    pub units: Vec<UnitFixture>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserFixture>,
    /// OTP card credentials.
    #[serde(default)]
    pub otp_cards: Vec<OtpCardFixture>,
    /// Roles and their rights.
    #[serde(default)]
    pub roles: Vec<RoleFixture>,
    /// Role assignments with data rooms.
    #[serde(default)]
    pub authorizations: Vec<AuthorizationFixture>,
}

/// A client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientFixture {
    /// Unique ext id.
    pub ext_id: String,
    /// Display name.
    pub name: String,
    /// OTP policy; every field optional.
    #[serde(default)]
    pub otp_policy: OtpPolicyFixture,
}

/// A client's OTP policy; absent fields take the vendor's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtpPolicyFixture {
    /// Default false.
    pub coordinate_card_format: Option<bool>,
    /// Default 120.
    pub challenge_lifetime_seconds: Option<u32>,
    /// Default 20.
    pub low_on_challenges_threshold: Option<u16>,
}

/// A unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UnitFixture {
    /// Ext id, unique in its client.
    pub ext_id: String,
    /// The client's ext id.
    pub client: String,
    /// Display name.
    pub name: String,
    /// The parent unit's ext id, in the same client.
    pub parent: Option<String>,
}

/// A user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserFixture {
    /// Ext id, unique in its client.
    pub ext_id: String,
    /// The client's ext id.
    pub client: String,
    /// The home unit's ext id, in the same client.
    pub unit: String,
    /// Login id, unique in its client.
    pub login_id: String,
}

/// An OTP card credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtpCardFixture {
    /// Ext id, unique in its client.
    pub ext_id: String,
    /// The client's ext id.
    pub client: String,
    /// The owner's ext id, in that client.
    pub user: String,
    /// One of the eight state names.
    pub state: String,
    /// Creation time; default: when first loaded.
    pub created: Option<DateTime<Utc>>,
    /// Inclusive start of validity; default open.
    pub valid_from: Option<DateTime<Utc>>,
    /// Exclusive end of validity; default open.
    pub valid_to: Option<DateTime<Utc>>,
    /// Rows, 1..=99 (default 12).
    #[serde(default = "default_rows")]
    pub rows: u32,
    /// Columns, 1..=26 (default 14).
    #[serde(default = "default_columns")]
    pub columns: u32,
    /// Row-major cell codes, exactly rows x columns; random codes when absent.
    pub codes: Option<Vec<String>>,
    /// 0-based row-major indexes of used cells.
    #[serde(default)]
    pub used_cells: Vec<u32>,
}

fn default_rows() -> u32 {
    u32::from(GridSize::DEFAULT.rows())
}

fn default_columns() -> u32 {
    u32::from(GridSize::DEFAULT.columns())
}

/// A role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleFixture {
    /// Unique name.
    pub name: String,
    /// Elementary rights, e.g. `AccessControl.CredentialView`.
    pub rights: Vec<String>,
}

/// A role assignment of a caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizationFixture {
    /// The caller's client ext id.
    pub client: String,
    /// The caller's user ext id.
    pub user: String,
    /// The role's name.
    pub role: String,
    /// `"*"` or a list of client ext ids.
    pub client_dataroom: DataroomFixture,
    /// `"*"` or a list of unit ext ids of the caller's client.
    pub unit_dataroom: DataroomFixture,
}

/// A data room: `"*"` for global, or a list of ext ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DataroomFixture {
    /// Must be `"*"`.
    Global(String),
    /// The members.
    Only(Vec<String>),
}

/// Why a fixture file was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// Not JSON, or not of the format's shape.
    #[error("malformed fixture file at {path}: {message}")]
    Malformed {
        /// Where in the document (e.g. `otpCards[0].rows`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An entry breaks a rule or names something that does not exist.
    #[error("{entry}: {message}")]
    Invalid {
        /// The entry, e.g. `authorizations[3]`.
        entry: String,
        /// What is wrong, with the offending value.
        message: String,
    },
    /// The database refused an entry (a constraint the file breaks).
    #[error("{entry}: refused by the database: {source}")]
    Refused {
        /// The entry.
        entry: String,
        /// The database's error.
        source: diesel::result::Error,
    },
    /// The database failed outside any one entry.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

fn invalid(entry: &str, message: impl Into<String>) -> FixtureError {
    FixtureError::Invalid {
        entry: entry.to_owned(),
        message: message.into(),
    }
}

/// How many entries of each kind a load wrote or confirmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Clients.
    pub clients: usize,
    /// Units.
    pub units: usize,
    /// Users.
    pub users: usize,
    /// OTP cards.
    pub otp_cards: usize,
    /// Roles.
    pub roles: usize,
    /// Authorizations.
    pub authorizations: usize,
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} clients, {} units, {} users, {} OTP cards, {} roles, {} authorizations",
            self.clients, self.units, self.users, self.otp_cards, self.roles, self.authorizations
        )
    }
}

/// Parses a fixture file, reporting the path of the first offending value.
pub fn parse_fixtures(json: &str) -> Result<FixtureDocument, FixtureError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        FixtureError::Malformed {
            path: if path == "." {
                "top level".to_owned()
            } else {
                path
            },
            message: err.into_inner().to_string(),
        }
    })
}

/// Parses and loads a fixture file in one transaction.
pub fn load_fixtures(
    conn: &mut PgConnection,
    json: &str,
    hasher: &CardCodeHasher,
) -> Result<LoadSummary, FixtureError> {
    let document = parse_fixtures(json)?;
    validate(&document)?;
    conn.transaction(|conn| write(conn, &document, hasher))
}

/// Checks every rule that needs no database, so a bad file fails before any write.
fn validate(doc: &FixtureDocument) -> Result<(), FixtureError> {
    let mut seen: HashMap<(&str, String), String> = HashMap::new();
    let mut unique = |kind: &'static str, key: String, entry: &str| match seen
        .insert((kind, key.clone()), entry.to_owned())
    {
        Some(first) => Err(invalid(
            entry,
            format!("duplicate {key} (first in {first})"),
        )),
        None => Ok(()),
    };
    for (i, c) in doc.clients.iter().enumerate() {
        let entry = format!("clients[{i}]");
        ext_id::<ClientExtId>(&entry, "extId", &c.ext_id)?;
        text(&entry, "name", &c.name)?;
        unique("client", format!("client '{}'", c.ext_id), &entry)?;
    }
    for (i, u) in doc.units.iter().enumerate() {
        let entry = format!("units[{i}]");
        ext_id::<UnitExtId>(&entry, "extId", &u.ext_id)?;
        ext_id::<ClientExtId>(&entry, "client", &u.client)?;
        text(&entry, "name", &u.name)?;
        if let Some(parent) = &u.parent {
            ext_id::<UnitExtId>(&entry, "parent", parent)?;
            if parent == &u.ext_id {
                return Err(invalid(
                    &entry,
                    format!("unit '{parent}' cannot be its own parent"),
                ));
            }
        }
        unique(
            "unit",
            format!("unit '{}' in client '{}'", u.ext_id, u.client),
            &entry,
        )?;
    }
    for (i, u) in doc.users.iter().enumerate() {
        let entry = format!("users[{i}]");
        ext_id::<UserExtId>(&entry, "extId", &u.ext_id)?;
        ext_id::<ClientExtId>(&entry, "client", &u.client)?;
        ext_id::<UnitExtId>(&entry, "unit", &u.unit)?;
        text(&entry, "loginId", &u.login_id)?;
        unique(
            "user",
            format!("user '{}' in client '{}'", u.ext_id, u.client),
            &entry,
        )?;
        unique(
            "login",
            format!("loginId '{}' in client '{}'", u.login_id, u.client),
            &entry,
        )?;
    }
    for (i, card) in doc.otp_cards.iter().enumerate() {
        let entry = format!("otpCards[{i}]");
        validate_card(&entry, card)?;
        unique(
            "card",
            format!("OTP card '{}' in client '{}'", card.ext_id, card.client),
            &entry,
        )?;
    }
    for (i, r) in doc.roles.iter().enumerate() {
        let entry = format!("roles[{i}]");
        text(&entry, "name", &r.name)?;
        for (j, right) in r.rights.iter().enumerate() {
            text(&entry, &format!("rights[{j}]"), right)?;
        }
        unique("role", format!("role '{}'", r.name), &entry)?;
    }
    for (i, a) in doc.authorizations.iter().enumerate() {
        let entry = format!("authorizations[{i}]");
        ext_id::<ClientExtId>(&entry, "client", &a.client)?;
        ext_id::<UserExtId>(&entry, "user", &a.user)?;
        text(&entry, "role", &a.role)?;
        for (field, room) in [
            ("clientDataroom", &a.client_dataroom),
            ("unitDataroom", &a.unit_dataroom),
        ] {
            if let DataroomFixture::Global(star) = room {
                if star != "*" {
                    return Err(invalid(
                        &entry,
                        format!("{field} must be \"*\" or a list, got '{star}'"),
                    ));
                }
            }
        }
        unique(
            "authorization",
            format!(
                "role '{}' for user '{}' in client '{}'",
                a.role, a.user, a.client
            ),
            &entry,
        )?;
    }
    Ok(())
}

fn validate_card(
    entry: &str,
    card: &OtpCardFixture,
) -> Result<(GridSize, CredentialState), FixtureError> {
    ext_id::<CredentialExtId>(entry, "extId", &card.ext_id)?;
    ext_id::<ClientExtId>(entry, "client", &card.client)?;
    ext_id::<UserExtId>(entry, "user", &card.user)?;
    let state: CredentialState = card
        .state
        .parse()
        .map_err(|e: idm_otp_domain::UnknownState| invalid(entry, e.to_string()))?;
    ValidityPeriod::new(card.valid_from, card.valid_to)
        .map_err(|e| invalid(entry, e.to_string()))?;
    let grid = GridSize::new(card.rows, card.columns).map_err(|e| invalid(entry, e.to_string()))?;
    OtpCard::new(grid, card.used_cells.iter().copied())
        .map_err(|e| invalid(entry, format!("usedCells: {e}")))?;
    if let Some(codes) = &card.codes {
        let cells = usize::from(grid.cell_count());
        if codes.len() != cells {
            return Err(invalid(
                entry,
                format!(
                    "expected {cells} codes ({} x {}), got {}",
                    grid.rows(),
                    grid.columns(),
                    codes.len()
                ),
            ));
        }
        if let Some(j) = codes
            .iter()
            .position(|c| c.is_empty() || c.len() > 64 || c.chars().any(char::is_control))
        {
            // The code itself is a secret: name its position only.
            return Err(invalid(
                entry,
                format!("codes[{j}] must be 1 to 64 printable bytes"),
            ));
        }
    }
    Ok((grid, state))
}

fn ext_id<T: std::str::FromStr<Err = idm_otp_domain::ExtIdError>>(
    entry: &str,
    field: &str,
    value: &str,
) -> Result<T, FixtureError> {
    value.parse().map_err(|e: idm_otp_domain::ExtIdError| {
        invalid(entry, format!("{field} '{}': {e}", value.escape_debug()))
    })
}

fn text(entry: &str, field: &str, value: &str) -> Result<(), FixtureError> {
    if value.is_empty() || value.len() > 255 || value.chars().any(char::is_control) {
        return Err(invalid(
            entry,
            format!(
                "{field} must be 1 to 255 bytes without control characters, got '{}'",
                value.escape_debug()
            ),
        ));
    }
    Ok(())
}

fn refused(entry: &str) -> impl FnOnce(diesel::result::Error) -> FixtureError + '_ {
    move |source| FixtureError::Refused {
        entry: entry.to_owned(),
        source,
    }
}

fn write(
    conn: &mut PgConnection,
    doc: &FixtureDocument,
    hasher: &CardCodeHasher,
) -> Result<LoadSummary, FixtureError> {
    for (i, c) in doc.clients.iter().enumerate() {
        upsert_client(conn, &format!("clients[{i}]"), c)?;
    }
    write_units(conn, &doc.units)?;
    for (i, u) in doc.users.iter().enumerate() {
        upsert_user(conn, &format!("users[{i}]"), u)?;
    }
    for (i, r) in doc.roles.iter().enumerate() {
        upsert_role(conn, &format!("roles[{i}]"), r)?;
    }
    for (i, card) in doc.otp_cards.iter().enumerate() {
        upsert_card(conn, &format!("otpCards[{i}]"), card, hasher)?;
    }
    for (i, a) in doc.authorizations.iter().enumerate() {
        upsert_authorization(conn, &format!("authorizations[{i}]"), a)?;
    }
    Ok(LoadSummary {
        clients: doc.clients.len(),
        units: doc.units.len(),
        users: doc.users.len(),
        otp_cards: doc.otp_cards.len(),
        roles: doc.roles.len(),
        authorizations: doc.authorizations.len(),
    })
}

fn client_id(conn: &mut PgConnection, entry: &str, ext: &str) -> Result<Uuid, FixtureError> {
    clients::table
        .filter(clients::ext_id.eq(ext))
        .select(clients::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| invalid(entry, format!("unknown client '{ext}'")))
}

fn find_unit(
    conn: &mut PgConnection,
    client: Uuid,
    ext: &str,
) -> QueryResult<Option<(Uuid, Vec<Uuid>)>> {
    units::table
        .filter(units::client_id.eq(client))
        .filter(units::ext_id.eq(ext))
        .select((units::id, units::path))
        .first(conn)
        .optional()
}

fn user_id(
    conn: &mut PgConnection,
    entry: &str,
    client: Uuid,
    client_ext: &str,
    ext: &str,
) -> Result<Uuid, FixtureError> {
    users::table
        .filter(users::client_id.eq(client))
        .filter(users::ext_id.eq(ext))
        .select(users::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            invalid(
                entry,
                format!("unknown user '{ext}' in client '{client_ext}'"),
            )
        })
}

fn upsert_client(
    conn: &mut PgConnection,
    entry: &str,
    c: &ClientFixture,
) -> Result<(), FixtureError> {
    let policy = &c.otp_policy;
    let lifetime = i32::try_from(policy.challenge_lifetime_seconds.unwrap_or(120))
        .map_err(|_| invalid(entry, "otpPolicy.challengeLifetimeSeconds is too large"))?;
    diesel::sql_query(
        "INSERT INTO clients (id, ext_id, name, coordinate_card_format, challenge_lifetime_seconds,
                              low_on_challenges_threshold)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (ext_id) DO UPDATE SET name = EXCLUDED.name,
             coordinate_card_format = EXCLUDED.coordinate_card_format,
             challenge_lifetime_seconds = EXCLUDED.challenge_lifetime_seconds,
             low_on_challenges_threshold = EXCLUDED.low_on_challenges_threshold",
    )
    .bind::<SqlUuid, _>(Uuid::new_v4())
    .bind::<Text, _>(&c.ext_id)
    .bind::<Text, _>(&c.name)
    .bind::<Bool, _>(policy.coordinate_card_format.unwrap_or(false))
    .bind::<Int4, _>(lifetime)
    .bind::<Int4, _>(i32::from(policy.low_on_challenges_threshold.unwrap_or(20)))
    .execute(conn)
    .map_err(refused(entry))?;
    Ok(())
}

/// Writes units parents first, whatever their order in the file, and keeps every unit's
/// ancestor path (and its descendants' paths) current.
fn write_units(conn: &mut PgConnection, units_in_file: &[UnitFixture]) -> Result<(), FixtureError> {
    let key = |client: &'_ str, unit: &'_ str| (client.to_owned(), unit.to_owned());
    let defined: HashSet<(String, String)> = units_in_file
        .iter()
        .map(|u| key(&u.client, &u.ext_id))
        .collect();
    let mut written: HashSet<(String, String)> = HashSet::new();
    let mut pending: Vec<(usize, &UnitFixture)> = units_in_file.iter().enumerate().collect();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(_, u)| match &u.parent {
                None => true,
                Some(parent) => {
                    let parent = key(&u.client, parent);
                    !defined.contains(&parent) || written.contains(&parent)
                }
            });
        if let (true, Some((i, unit))) = (ready.is_empty(), waiting.first()) {
            return Err(invalid(
                &format!("units[{i}]"),
                format!(
                    "parent '{}' in client '{}' is part of a cycle",
                    unit.parent.as_deref().unwrap_or_default(),
                    unit.client
                ),
            ));
        }
        for (i, unit) in ready {
            let entry = format!("units[{i}]");
            let client = client_id(conn, &entry, &unit.client)?;
            let parent_path = match &unit.parent {
                None => Vec::new(),
                Some(parent) => {
                    find_unit(conn, client, parent)?
                        .ok_or_else(|| {
                            invalid(
                                &entry,
                                format!("unknown parent '{parent}' in client '{}'", unit.client),
                            )
                        })?
                        .1
                }
            };
            upsert_unit(conn, &entry, client, unit, parent_path)?;
            written.insert(key(&unit.client, &unit.ext_id));
        }
        pending = waiting;
    }
    Ok(())
}

fn upsert_unit(
    conn: &mut PgConnection,
    entry: &str,
    client: Uuid,
    unit: &UnitFixture,
    parent_path: Vec<Uuid>,
) -> Result<(), FixtureError> {
    let existing = find_unit(conn, client, &unit.ext_id)?;
    let id = existing.as_ref().map_or_else(Uuid::new_v4, |(id, _)| *id);
    if parent_path.contains(&id) {
        return Err(invalid(
            entry,
            format!("unit '{}' would become its own ancestor", unit.ext_id),
        ));
    }
    let mut path = parent_path;
    path.push(id);
    let parent_id = path.len().checked_sub(2).and_then(|i| path.get(i)).copied();
    diesel::sql_query(
        "INSERT INTO units (id, client_id, ext_id, name, parent_id, path)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (client_id, ext_id) DO UPDATE SET name = EXCLUDED.name,
             parent_id = EXCLUDED.parent_id, path = EXCLUDED.path",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(client)
    .bind::<Text, _>(&unit.ext_id)
    .bind::<Text, _>(&unit.name)
    .bind::<Nullable<SqlUuid>, _>(parent_id)
    .bind::<Array<SqlUuid>, _>(&path)
    .execute(conn)
    .map_err(refused(entry))?;
    // Descendants keep their part of the path below this unit and take its new ancestors.
    diesel::sql_query(
        "UPDATE units SET path = $2 || path[array_position(path, $1) + 1:]
         WHERE $1 = ANY (path) AND id <> $1 AND path[1:array_position(path, $1)] <> $2",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Array<SqlUuid>, _>(&path)
    .execute(conn)
    .map_err(refused(entry))?;
    Ok(())
}

fn upsert_user(conn: &mut PgConnection, entry: &str, u: &UserFixture) -> Result<(), FixtureError> {
    let client = client_id(conn, entry, &u.client)?;
    let (unit, _) = find_unit(conn, client, &u.unit)?.ok_or_else(|| {
        invalid(
            entry,
            format!("unknown unit '{}' in client '{}'", u.unit, u.client),
        )
    })?;
    diesel::sql_query(
        "INSERT INTO users (id, client_id, unit_id, ext_id, login_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (client_id, ext_id) DO UPDATE SET unit_id = EXCLUDED.unit_id,
             login_id = EXCLUDED.login_id",
    )
    .bind::<SqlUuid, _>(Uuid::new_v4())
    .bind::<SqlUuid, _>(client)
    .bind::<SqlUuid, _>(unit)
    .bind::<Text, _>(&u.ext_id)
    .bind::<Text, _>(&u.login_id)
    .execute(conn)
    .map_err(refused(entry))?;
    Ok(())
}

fn upsert_role(conn: &mut PgConnection, entry: &str, r: &RoleFixture) -> Result<(), FixtureError> {
    diesel::sql_query("INSERT INTO roles (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind::<SqlUuid, _>(Uuid::new_v4())
        .bind::<Text, _>(&r.name)
        .execute(conn)
        .map_err(refused(entry))?;
    let role: Uuid = roles::table
        .filter(roles::name.eq(&r.name))
        .select(roles::id)
        .first(conn)?;
    diesel::sql_query("DELETE FROM role_rights WHERE role_id = $1 AND NOT (right_name = ANY ($2))")
        .bind::<SqlUuid, _>(role)
        .bind::<Array<Text>, _>(&r.rights)
        .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO role_rights (role_id, right_name) SELECT $1, unnest($2::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(role)
    .bind::<Array<Text>, _>(&r.rights)
    .execute(conn)
    .map_err(refused(entry))?;
    Ok(())
}

fn random_codes(cells: u16) -> Vec<String> {
    let mut rng = rand::rng();
    (0..cells)
        .map(|_| format!("{:04}", rng.random_range(0..10_000u32)))
        .collect()
}

fn upsert_card(
    conn: &mut PgConnection,
    entry: &str,
    card: &OtpCardFixture,
    hasher: &CardCodeHasher,
) -> Result<(), FixtureError> {
    let (grid, state) = validate_card(entry, card)?;
    let client = client_id(conn, entry, &card.client)?;
    let user = user_id(conn, entry, client, &card.client, &card.user)?;
    let existing: Option<(Uuid, i16, i16, Vec<Vec<u8>>)> = otp_cards::table
        .filter(otp_cards::client_id.eq(client))
        .filter(otp_cards::ext_id.eq(&card.ext_id))
        .select((
            otp_cards::id,
            otp_cards::grid_rows,
            otp_cards::grid_columns,
            otp_cards::code_hashes,
        ))
        .first(conn)
        .optional()?;
    let id = existing.as_ref().map_or_else(Uuid::new_v4, |e| e.0);
    let same_grid = |e: &(Uuid, i16, i16, Vec<Vec<u8>>)| {
        i32::from(e.1) == i32::from(grid.rows()) && i32::from(e.2) == i32::from(grid.columns())
    };
    let hashes: Vec<Vec<u8>> = match (&card.codes, existing) {
        (Some(codes), _) => hash_all(hasher, id, codes),
        // No codes given: keep the stored ones if they still fit, else make new ones.
        (None, Some(e)) if same_grid(&e) => e.3,
        (None, _) => hash_all(hasher, id, &random_codes(grid.cell_count())),
    };
    let mut used: Vec<i16> = card
        .used_cells
        .iter()
        .filter_map(|c| i16::try_from(*c).ok())
        .collect();
    used.sort_unstable();
    used.dedup();
    diesel::sql_query(
        "INSERT INTO otp_cards (id, client_id, user_id, ext_id, state, valid_from, valid_to,
                                created_at, grid_rows, grid_columns, code_hashes, used_cells)
         VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), $9, $10, $11, $12)
         ON CONFLICT (client_id, ext_id) DO UPDATE SET
             user_id = EXCLUDED.user_id, state = EXCLUDED.state,
             valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to,
             created_at = COALESCE($8, otp_cards.created_at),
             grid_rows = EXCLUDED.grid_rows, grid_columns = EXCLUDED.grid_columns,
             code_hashes = EXCLUDED.code_hashes, used_cells = EXCLUDED.used_cells,
             challenge_cell = CASE WHEN otp_cards.challenge_cell < EXCLUDED.grid_rows * EXCLUDED.grid_columns
                                   THEN otp_cards.challenge_cell END,
             challenge_issued_at = CASE WHEN otp_cards.challenge_cell < EXCLUDED.grid_rows * EXCLUDED.grid_columns
                                        THEN otp_cards.challenge_issued_at END,
             version = otp_cards.version + 1
         WHERE (otp_cards.user_id, otp_cards.state, otp_cards.valid_from, otp_cards.valid_to,
                otp_cards.created_at, otp_cards.grid_rows, otp_cards.grid_columns,
                otp_cards.code_hashes, otp_cards.used_cells)
           IS DISTINCT FROM
               (EXCLUDED.user_id, EXCLUDED.state, EXCLUDED.valid_from, EXCLUDED.valid_to,
                COALESCE($8, otp_cards.created_at), EXCLUDED.grid_rows, EXCLUDED.grid_columns,
                EXCLUDED.code_hashes, EXCLUDED.used_cells)",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(client)
    .bind::<SqlUuid, _>(user)
    .bind::<Text, _>(&card.ext_id)
    .bind::<Text, _>(state.as_str())
    .bind::<Nullable<Timestamptz>, _>(card.valid_from)
    .bind::<Nullable<Timestamptz>, _>(card.valid_to)
    .bind::<Nullable<Timestamptz>, _>(card.created)
    .bind::<Int2, _>(i16::from(grid.rows()))
    .bind::<Int2, _>(i16::from(grid.columns()))
    .bind::<Array<Bytea>, _>(&hashes)
    .bind::<Array<Int2>, _>(&used)
    .execute(conn)
    .map_err(|source| match &source {
        diesel::result::Error::DatabaseError(_, info)
            if info.constraint_name() == Some("otp_cards_at_most_two") =>
        {
            invalid(
                entry,
                format!(
                    "user '{}' already holds two OTP cards that are not archived",
                    card.user
                ),
            )
        }
        _ => refused(entry)(source),
    })?;
    Ok(())
}

fn hash_all(hasher: &CardCodeHasher, card: Uuid, codes: &[String]) -> Vec<Vec<u8>> {
    codes
        .iter()
        .zip(0u16..)
        .map(|(code, cell)| hasher.hash(card, cell, code))
        .collect()
}

fn upsert_authorization(
    conn: &mut PgConnection,
    entry: &str,
    a: &AuthorizationFixture,
) -> Result<(), FixtureError> {
    let client = client_id(conn, entry, &a.client)?;
    let user = user_id(conn, entry, client, &a.client, &a.user)?;
    let role: Uuid = roles::table
        .filter(roles::name.eq(&a.role))
        .select(roles::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| invalid(entry, format!("unknown role '{}'", a.role)))?;
    let mut client_room = Vec::new();
    if let DataroomFixture::Only(list) = &a.client_dataroom {
        for ext in list {
            client_room.push(
                client_id(conn, entry, ext).map_err(|_| {
                    invalid(entry, format!("clientDataroom: unknown client '{ext}'"))
                })?,
            );
        }
    }
    let mut unit_room = Vec::new();
    if let DataroomFixture::Only(list) = &a.unit_dataroom {
        for ext in list {
            let (unit, _) = find_unit(conn, client, ext)?.ok_or_else(|| {
                invalid(
                    entry,
                    format!(
                        "unitDataroom: unknown unit '{ext}' in client '{}'",
                        a.client
                    ),
                )
            })?;
            unit_room.push(unit);
        }
    }
    let existing: Option<Uuid> = authorizations::table
        .filter(authorizations::user_id.eq(user))
        .filter(authorizations::role_id.eq(role))
        .select(authorizations::id)
        .first(conn)
        .optional()?;
    let id = existing.unwrap_or_else(Uuid::new_v4);
    diesel::sql_query(
        "INSERT INTO authorizations (id, user_id, role_id, all_clients, all_units)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, role_id) DO UPDATE SET all_clients = EXCLUDED.all_clients,
             all_units = EXCLUDED.all_units",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(user)
    .bind::<SqlUuid, _>(role)
    .bind::<Bool, _>(matches!(a.client_dataroom, DataroomFixture::Global(_)))
    .bind::<Bool, _>(matches!(a.unit_dataroom, DataroomFixture::Global(_)))
    .execute(conn)
    .map_err(refused(entry))?;
    for (table, column, members) in [
        ("authorization_clients", "client_id", &client_room),
        ("authorization_units", "unit_id", &unit_room),
    ] {
        diesel::sql_query(format!(
            "DELETE FROM {table} WHERE authorization_id = $1 AND NOT ({column} = ANY ($2))"
        ))
        .bind::<SqlUuid, _>(id)
        .bind::<Array<SqlUuid>, _>(members)
        .execute(conn)?;
        diesel::sql_query(format!(
            "INSERT INTO {table} (authorization_id, {column}) SELECT $1, unnest($2::uuid[])
             ON CONFLICT DO NOTHING"
        ))
        .bind::<SqlUuid, _>(id)
        .bind::<Array<SqlUuid>, _>(members)
        .execute(conn)
        .map_err(refused(entry))?;
    }
    Ok(())
}
