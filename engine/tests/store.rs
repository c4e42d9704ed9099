//! The module store and accounts, as one story run against SQLite and PostgreSQL.

use engine::testing::backend_urls;
use engine::{Engine, Error, User};
use model::{Category, Module, ModuleKind, Node, Parameter, PublicRights, Targets};

async fn engines() -> Vec<(&'static str, Engine)> {
    let mut out = Vec::new();
    for (name, url) in backend_urls().await {
        out.push((name, Engine::open(&url).await.unwrap_or_else(|e| panic!("{name}: {e}"))));
    }
    out
}

fn project(path: &str) -> Module {
    Module { kind: ModuleKind::Project, path: path.into(), ..Default::default() }
}

fn native(path: &str) -> Module {
    Module {
        kind: ModuleKind::Image,
        path: path.into(),
        native: true,
        images: [("local".into(), "host".into())].into(),
        ..Default::default()
    }
}

fn derived(path: &str, parent: &str, params: Vec<Parameter>) -> Module {
    Module {
        kind: ModuleKind::Image,
        path: path.into(),
        reference: Some(parent.into()),
        parameters: params,
        targets: Targets { execute: "#!/bin/sh\necho hi\n".into(), ..Default::default() },
        ..Default::default()
    }
}

fn param(name: &str, category: Category, default: Option<&str>) -> Parameter {
    Parameter { name: name.into(), category, default: default.map(String::from), ..Default::default() }
}

fn field_of(e: Error) -> String {
    match e {
        Error::Invalid(errs) => errs[0].field.clone(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn accounts_sessions_and_tokens() {
    for (db, e) in engines().await {
        let first = e.register("olivia", "correct horse", None, "test").await.unwrap();
        assert!(first.is_admin, "{db}: the first user is the administrator");
        let second = e.register("oscar", "battery staple", None, "test").await.unwrap();
        assert!(!second.is_admin, "{db}");
        assert!(matches!(e.register("oscar", "whatever1", None, "test").await, Err(Error::Conflict(_))), "{db}");
        assert_eq!(field_of(e.register("Bad Name", "whatever1", None, "test").await.unwrap_err()), "name", "{db}");
        assert_eq!(field_of(e.register("shorty", "short", None, "test").await.unwrap_err()), "password", "{db}");

        assert!(matches!(e.login("oscar", "wrong password", "test").await, Err(Error::Unauthorized(_))), "{db}");
        let (user, session) = e.login("oscar", "battery staple", "test").await.unwrap();
        assert_eq!(e.user_for_session(&session).await.unwrap(), Some(user.clone()), "{db}");
        e.logout(&session).await.unwrap();
        assert_eq!(e.user_for_session(&session).await.unwrap(), None, "{db}: logout ends the session");

        let (token, secret) = e.create_api_token(&user, "ci").await.unwrap();
        assert_eq!(e.user_for_api_token(&secret).await.unwrap(), Some(user.clone()), "{db}");
        assert_eq!(e.list_api_tokens(&user).await.unwrap()[0].name, "ci", "{db}");
        e.revoke_api_token(&user, &token.id).await.unwrap();
        assert_eq!(e.user_for_api_token(&secret).await.unwrap(), None, "{db}: a revoked token no longer works");

        let admin = e.create_admin("root", Some("root password")).await.unwrap();
        assert!(admin.is_admin, "{db}");
        let p = e.update_profile(&user, "on-error", 45, "ssh-ed25519 AAAA test").await.unwrap();
        assert_eq!((p.keep_running.as_str(), p.run_timeout_minutes), ("on-error", 45), "{db}");
        assert_eq!(field_of(e.update_profile(&user, "sometimes", 45, "").await.unwrap_err()), "keep_running", "{db}");
    }
}

#[tokio::test]
async fn every_save_is_a_new_version_that_can_be_read_and_restored() {
    for (db, e) in engines().await {
        let owner = e.register("olivia", "correct horse", None, "test").await.unwrap();
        let o = Some(&owner);
        e.save_module(o, project("olivia")).await.unwrap();
        e.save_module(o, native("olivia/base")).await.unwrap();
        let mut web = derived("olivia/web", "olivia/base", vec![param("port", Category::Output, Some("8080"))]);
        web.comment = Some("first".into());
        let v1 = e.save_module(o, web.clone()).await.unwrap();
        assert_eq!((v1.version, v1.author.as_deref(), v1.owner.as_deref()), (Some(1), Some("olivia"), Some("olivia")), "{db}");
        web.description = "second".into();
        web.comment = Some("describe it".into());
        let v2 = e.save_module(o, web.clone()).await.unwrap();
        assert_eq!(v2.version, Some(2), "{db}");

        let history = e.history(o, "olivia/web").await.unwrap();
        let seen: Vec<_> = history.iter().map(|h| (h.version, h.comment.as_str())).collect();
        assert_eq!(seen, [(2, "describe it"), (1, "first")], "{db}: newest first, with comments");

        assert_eq!(e.get_module(o, "olivia/web", Some(1)).await.unwrap().description, "", "{db}");
        assert_eq!(e.get_module(o, "olivia/web", None).await.unwrap().description, "second", "{db}");
        assert!(matches!(e.get_module(o, "olivia/web", Some(9)).await, Err(Error::NotFound(_))), "{db}");

        let v3 = e.restore(o, "olivia/web", 1).await.unwrap();
        assert_eq!((v3.version, v3.description.as_str()), (Some(3), ""), "{db}: restore adds a version with the old content");
        assert_eq!(v3.comment.as_deref(), Some("Restored version 1"), "{db}");
        assert_eq!(e.get_module(o, "olivia/web", Some(1)).await.unwrap().content(), v3.content(), "{db}");

        let children = e.list_children(o, Some("olivia")).await.unwrap();
        let paths: Vec<_> = children.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["olivia/base", "olivia/web"], "{db}");

        assert!(matches!(e.delete_module(o, "olivia").await, Err(Error::Conflict(_))), "{db}: a project must be empty");
        e.delete_module(o, "olivia/web").await.unwrap();
        assert!(matches!(e.get_module(o, "olivia/web", None).await, Err(Error::NotFound(_))), "{db}");
        assert!(e.history(o, "olivia/web").await.is_err(), "{db}");
    }
}

#[tokio::test]
async fn rights_follow_the_owner_the_public_flags_and_the_project() {
    for (db, e) in engines().await {
        let admin = e.register("ada", "admin password", None, "test").await.unwrap();
        let owner = e.register("olivia", "correct horse", None, "test").await.unwrap();
        let other = e.register("oscar", "battery staple", None, "test").await.unwrap();
        let (a, o, x) = (Some(&admin), Some(&owner), Some(&other));
        e.save_module(o, project("olivia")).await.unwrap();
        e.save_module(o, native("olivia/base")).await.unwrap();

        // Private by default.
        assert!(matches!(e.get_module(None, "olivia/base", None).await, Err(Error::Unauthorized(_))), "{db}");
        assert!(matches!(e.get_module(x, "olivia/base", None).await, Err(Error::Forbidden(_))), "{db}");
        assert!(e.get_module(a, "olivia/base", None).await.is_ok(), "{db}");
        assert!(e.list_children(x, None).await.unwrap().iter().all(|m| m.path != "olivia"), "{db}: hidden from listings");
        assert!(matches!(e.save_module(x, native("olivia/intruder")).await, Err(Error::Forbidden(_))), "{db}");

        // Public read: others read but do not write, share or delete.
        e.share(o, "olivia/base", Some(PublicRights { read: true, ..Default::default() }), None).await.unwrap();
        assert!(e.get_module(x, "olivia/base", None).await.is_ok(), "{db}");
        assert!(matches!(e.save_module(x, native("olivia/base")).await, Err(Error::Forbidden(_))), "{db}");
        assert!(matches!(e.delete_module(x, "olivia/base").await, Err(Error::Forbidden(_))), "{db}");
        assert!(matches!(e.share(x, "olivia/base", None, Some(true)).await, Err(Error::Forbidden(_))), "{db}");

        // Public write: others save versions, but cannot change rights through a save.
        e.share(o, "olivia/base", Some(PublicRights { write: true, ..Default::default() }), None).await.unwrap();
        let saved = e.save_module(x, native("olivia/base")).await.unwrap();
        assert_eq!((saved.version, saved.author.as_deref(), saved.owner.as_deref()), (Some(2), Some("oscar"), Some("olivia")), "{db}");
        assert_eq!(saved.public.unwrap(), PublicRights { read: true, write: true, deploy: false }, "{db}: write implies read");
        let mut grab = native("olivia/base");
        grab.published = Some(true);
        assert!(matches!(e.save_module(x, grab).await, Err(Error::Forbidden(_))), "{db}");

        // Published: anonymous visitors read it, and it is in the catalog.
        e.share(a, "olivia/base", None, Some(true)).await.unwrap();
        assert!(e.get_module(None, "olivia/base", None).await.is_ok(), "{db}");
        assert!(e.catalog("", None).await.unwrap().iter().any(|m| m.summary.path == "olivia/base"), "{db}");
        assert!(matches!(e.save_module(None, native("olivia/base")).await, Err(Error::Unauthorized(_))), "{db}");

        // A project passes its rights down to new children.
        let mut shared = project("olivia/shared");
        shared.public = Some(PublicRights { read: true, deploy: true, write: false });
        e.save_module(o, shared).await.unwrap();
        let child = e.save_module(o, native("olivia/shared/img")).await.unwrap();
        assert_eq!(child.public.unwrap(), PublicRights { read: true, deploy: true, write: false }, "{db}");
        assert!(e.get_module(x, "olivia/shared/img", None).await.is_ok(), "{db}");

        // Administrators may do anything.
        e.delete_module(a, "olivia/shared/img").await.unwrap();
    }
}

#[tokio::test]
async fn invalid_modules_are_rejected_with_the_field_named_and_nothing_written() {
    for (db, e) in engines().await {
        let owner = e.register("olivia", "correct horse", None, "test").await.unwrap();
        let o = Some(&owner);
        e.save_module(o, project("p")).await.unwrap();
        e.save_module(o, native("p/base")).await.unwrap();
        e.save_module(o, derived("p/web", "p/base", vec![param("port", Category::Output, Some("80"))])).await.unwrap();
        e.save_module(
            o,
            derived("p/client", "p/base", vec![param("server", Category::Input, None), param("mode", Category::Input, Some("x"))]),
        )
        .await
        .unwrap();

        let deployment = |links: &[(&str, &str)], values: &[(&str, &str)]| {
            let mut m = Module { kind: ModuleKind::Deployment, path: "p/d".into(), ..Default::default() };
            m.nodes.insert("web".into(), Node { image: "p/web".into(), ..Default::default() });
            m.nodes.insert(
                "client".into(),
                Node {
                    image: "p/client".into(),
                    links: links.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
                    values: values.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
                    ..Default::default()
                },
            );
            m
        };
        let cases = [
            ("link to a missing output", deployment(&[("server", "web:nothing")], &[]), "nodes.client.links.server"),
            ("input without default, value or link", deployment(&[], &[]), "nodes.client.links.server"),
            ("value for an unknown input", deployment(&[("server", "web:hostname")], &[("nope", "1")]), "nodes.client.values.nope"),
            ("link from an unknown input", deployment(&[("server", "web:port"), ("nope", "web:port")], &[]), "nodes.client.links.nope"),
        ];
        for (what, m, field) in cases {
            assert_eq!(field_of(e.save_module(o, m).await.unwrap_err()), field, "{db}: {what}");
        }
        assert!(matches!(e.get_module(o, "p/d", None).await, Err(Error::NotFound(_))), "{db}: nothing written");
        let ok = e.save_module(o, deployment(&[("server", "web:hostname")], &[("mode", "y")])).await.unwrap();
        assert_eq!(ok.version, Some(1), "{db}");

        let mut missing = derived("p/orphan", "p/nothing", vec![]);
        assert_eq!(field_of(e.save_module(o, missing.clone()).await.unwrap_err()), "reference", "{db}");
        missing.reference = Some("p".into());
        assert_eq!(field_of(e.save_module(o, missing).await.unwrap_err()), "reference", "{db}: a project is not an image");

        // p/base → p/web makes a cycle: web's parent is base.
        let mut cyclic = derived("p/base", "p/web", vec![]);
        cyclic.native = false;
        let err = e.save_module(o, cyclic).await.unwrap_err();
        assert!(err.to_string().contains("reference cycle"), "{db}: {err}");
        assert_eq!(e.history(o, "p/base").await.unwrap().len(), 1, "{db}: rejected save wrote nothing");

        assert_eq!(field_of(e.save_module(o, native("q/orphan")).await.unwrap_err()), "path", "{db}: parent must exist");
        let mut long = derived("p/long", "p/base", vec![param("x", Category::Input, None)]);
        long.parameters[0].default = Some("v".repeat(4097));
        assert_eq!(field_of(e.save_module(o, long).await.unwrap_err()), "parameters.x.default", "{db}");
        let mut kind_change = project("p/web");
        kind_change.description = "now a project".into();
        assert_eq!(field_of(e.save_module(o, kind_change).await.unwrap_err()), "kind", "{db}");
    }
}

#[tokio::test]
async fn examples_load_once_and_export_import_reproduces_them() {
    for (db, e) in engines().await {
        let loaded = e.load_examples().await.unwrap();
        assert!(loaded >= 12, "{db}: {loaded}");
        assert_eq!(e.load_examples().await.unwrap(), 0, "{db}: loaded once");

        let catalog = e.catalog("", None).await.unwrap();
        assert!(catalog.iter().any(|m| m.summary.path == "examples/tutorials/hello/client_server"), "{db}");
        // Projects are folders: the catalog (for the UI and the API alike) leaves them out.
        assert!(catalog.iter().all(|m| m.summary.kind != ModuleKind::Project), "{db}");
        let hello = e.get_module(None, "examples/tutorials/hello/client_server", None).await.unwrap();
        assert_eq!(hello.nodes.len(), 2, "{db}: anonymous visitors read published modules");

        let apache = e.resolve_image(None, "examples/tutorials/hello/apache").await.unwrap();
        assert!(apache.has_output("hostname") && apache.has_output("port") && apache.has_output("ready"), "{db}");
        assert_eq!(apache.images["local"], "host", "{db}: native id inherited from the base image");
        assert_eq!(apache.targets["execute"].len(), 1, "{db}");

        let user = e.register("olivia", "correct horse", None, "test").await.unwrap();
        let exported = e.export(Some(&user), "examples").await.unwrap();
        let before = e.export_modules(Some(&user), "examples").await.unwrap();

        let (_, url) = backend_urls().await.into_iter().find(|(n, _)| *n == db).unwrap();
        let fresh = Engine::open(&url).await.unwrap();
        let importer = fresh.register("ivan", "import password", None, "test").await.unwrap();
        let written = fresh.import(Some(&importer), &exported).await.unwrap();
        assert_eq!(written.len(), before.len(), "{db}");
        let after = fresh.export_modules(Some(&importer), "examples").await.unwrap();
        assert_eq!(after, before, "{db}: export → import reproduces the same modules");

        // Importing again adds a version to each module, changing nothing else.
        fresh.import(Some(&importer), &exported).await.unwrap();
        assert_eq!(fresh.get_module(Some(&importer), "examples/cluster/master", None).await.unwrap().version, Some(2), "{db}");

        // A bad document rejects the whole bundle.
        let bad = format!("{exported}---\nkind: image\npath: examples/broken\nreference: examples/none\n");
        let err = fresh.import(Some(&importer), &bad).await.unwrap_err();
        assert_eq!(field_of(err), "reference", "{db}");
        assert_eq!(fresh.get_module(Some(&importer), "examples/cluster/master", None).await.unwrap().version, Some(2), "{db}");
    }
}

#[tokio::test]
async fn migrations_fail_loudly_on_a_foreign_database() {
    let err = Engine::open("mysql://nowhere").await.err().expect("unsupported URL is refused");
    assert!(err.to_string().contains("neither a sqlite: nor a postgres://"), "{err}");
    let _: Option<User> = None;
}
