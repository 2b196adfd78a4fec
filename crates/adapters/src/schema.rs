//! diesel's view of the tables created by the migrations.

diesel::table! {
    clients (id) {
        id -> Uuid,
        ext_id -> Text,
        name -> Text,
        coordinate_card_format -> Bool,
        challenge_lifetime_seconds -> Int4,
        low_on_challenges_threshold -> Int4,
    }
}

diesel::table! {
    units (id) {
        id -> Uuid,
        client_id -> Uuid,
        ext_id -> Text,
        name -> Text,
        parent_id -> Nullable<Uuid>,
        path -> Array<Uuid>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        client_id -> Uuid,
        unit_id -> Uuid,
        ext_id -> Text,
        login_id -> Text,
    }
}

diesel::table! {
    otp_cards (id) {
        id -> Uuid,
        client_id -> Uuid,
        user_id -> Uuid,
        ext_id -> Text,
        state -> Text,
        valid_from -> Nullable<Timestamptz>,
        valid_to -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        seq -> Int8,
        grid_rows -> Int2,
        grid_columns -> Int2,
        code_hashes -> Array<Bytea>,
        used_cells -> Array<Int2>,
        challenge_cell -> Nullable<Int2>,
        challenge_issued_at -> Nullable<Timestamptz>,
        version -> Int8,
    }
}

diesel::table! {
    roles (id) {
        id -> Uuid,
        name -> Text,
    }
}

diesel::table! {
    role_rights (role_id, right_name) {
        role_id -> Uuid,
        right_name -> Text,
    }
}

diesel::table! {
    authorizations (id) {
        id -> Uuid,
        user_id -> Uuid,
        role_id -> Uuid,
        all_clients -> Bool,
        all_units -> Bool,
    }
}

diesel::table! {
    authorization_clients (authorization_id, client_id) {
        authorization_id -> Uuid,
        client_id -> Uuid,
    }
}

diesel::table! {
    authorization_units (authorization_id, unit_id) {
        authorization_id -> Uuid,
        unit_id -> Uuid,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    clients,
    units,
    users,
    otp_cards,
    roles,
    role_rights,
    authorizations,
    authorization_clients,
    authorization_units,
);
