-- Images built from an image module's recipes, per connector. `build_key` is a digest of what
-- a build runs (each level's path, packages, prerecipe and recipe, and the base image id), so a
-- new version that changes none of them keeps its built image, and one that does has none.
CREATE TABLE built_images (
    module    TEXT NOT NULL,
    build_key TEXT NOT NULL,
    connector TEXT NOT NULL,
    image_id  TEXT NOT NULL,
    image     TEXT NOT NULL,
    version   BIGINT NOT NULL,
    run_id    TEXT NOT NULL,
    built_at  BIGINT NOT NULL,
    PRIMARY KEY (module, build_key, connector)
);
