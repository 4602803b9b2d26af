-- IOC console / API users (api/ioc). Passwords are Argon2id hashes (argon2-cffi, PHC
-- string format with its own salt and cost parameters, so costs can be raised later and
-- old hashes are rehashed on the next login). There is no default user: the first admin
-- is created with `tourpulse users create --role admin`.
CREATE TABLE IF NOT EXISTS ioc_users (
    username             text        PRIMARY KEY
                          CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'),
    password_hash        text        NOT NULL,
    role                 text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    disabled             boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- Tokens issued before this instant are refused (password change, disable, role change).
    tokens_valid_after   timestamptz NOT NULL DEFAULT now()
);
