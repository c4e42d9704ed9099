//! Table tests of the pure planner: a Hello-World-shaped deployment (a web server whose outputs
//! feed a client's inputs) and a single-image run, with the request's overrides.

use std::collections::BTreeMap;

use model::module::Category;
use model::run::RunRequest;
use model::{Module, ModuleKind, Node, Parameter};

use super::*;
use crate::inherit::{resolve, Level};

fn param(name: &str, category: Category, default: Option<&str>) -> Parameter {
    Parameter { name: name.into(), category, default: default.map(String::from), ..Default::default() }
}

/// A native image with per-connector ids, parameters, a recipe and packages.
fn image(path: &str, params: Vec<Parameter>) -> ResolvedImage {
    let module = Module {
        kind: ModuleKind::Image,
        path: path.into(),
        native: true,
        images: [("local".to_string(), "host".to_string())].into(),
        parameters: params,
        recipe: "echo built".into(),
        packages: vec!["curl".into()],
        targets: model::Targets { execute: "echo run".into(), ..Default::default() },
        ..Default::default()
    };
    resolve(vec![Level { path: path.into(), version: 3, module }])
}

fn web() -> ResolvedImage {
    image("p/web", vec![param("port", Category::Output, Some("8080")), param("ready", Category::Output, None)])
}

fn client() -> ResolvedImage {
    image(
        "p/client",
        vec![
            param("webserver.port", Category::Input, None),
            param("webserver.ready", Category::Input, None),
            param("greeting", Category::Input, Some("hi")),
        ],
    )
}

fn hello_nodes(clients: i64) -> Vec<NodeSpec> {
    let links: BTreeMap<String, String> =
        [("webserver.port".to_string(), "web:port".to_string()), ("webserver.ready".to_string(), "web:ready".to_string())].into();
    vec![
        NodeSpec { name: "client".into(), node: Node { image: "p/client".into(), multiplicity: clients, links, ..Default::default() } },
        NodeSpec { name: "web".into(), node: Node { image: "p/web".into(), ..Default::default() } },
    ]
}

fn plan(nodes: &[NodeSpec], request: RunRequest) -> Result<RunPlan> {
    let images: BTreeMap<String, ResolvedImage> = [("client".to_string(), client()), ("web".to_string(), web())].into();
    let connectors = vec!["local".to_string()];
    let built = BTreeMap::new();
    plan_run(&PlanInput {
        module: "p/hello",
        kind: ModuleKind::Deployment,
        nodes,
        images: &images,
        request: &request,
        connectors: &connectors,
        build: false,
        built: &built,
    })
}

fn value(plan: &RunPlan, key: &str) -> Option<Option<String>> {
    plan.params.iter().find(|p| p.key == key).map(|p| p.value.clone())
}

fn field_of(e: Error) -> String {
    match e {
        Error::Invalid(errors) => errors[0].field.clone(),
        other => format!("not invalid: {other}"),
    }
}

#[test]
fn a_deployment_becomes_instances_parameters_and_links() {
    let p = plan(&hello_nodes(2), RunRequest::default()).unwrap();
    let names: Vec<&str> = p.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["client.1", "client.2", "web.1"]);
    assert_eq!(p.instances_per_connector(), [("local".to_string(), 3)].into());
    // The run's own keys, then per node and instance.
    assert_eq!(value(&p, "ss:state"), Some(Some("Initializing".into())));
    assert_eq!(value(&p, "ss:abort"), Some(None));
    assert_eq!(value(&p, "client:multiplicity"), Some(Some("2".into())));
    assert_eq!(value(&p, "client:ids"), Some(Some("1,2".into())));
    assert_eq!(value(&p, "web.1:hostname"), Some(None), "reserved keys exist, unset");
    assert_eq!(value(&p, "client.2:greeting"), Some(Some("hi".into())), "defaults apply");
    // Links go from the first instance of the source node; a linked input with a known
    // output value gets it at once, the others wait for the write.
    assert!(p.links.contains(&Link { source: "web.1:ready".into(), target: "client.2:webserver.ready".into() }));
    assert_eq!(value(&p, "client.1:webserver.port"), Some(Some("8080".into())));
    assert_eq!(value(&p, "client.1:webserver.ready"), Some(None));
    // Scripts: build steps before targets, the union of packages in one script.
    let node = &p.nodes["web"];
    assert_eq!((node.image.as_str(), node.image_version, node.image_id.as_str()), ("p/web", 3, "host"));
    assert_eq!(node.targets.keys().collect::<Vec<_>>(), ["execute", "packages", "recipe"]);
    assert!(node.targets["packages"][0].script.contains("install -y -q curl"));
}

#[test]
fn overrides_change_multiplicity_values_and_links() {
    let req = RunRequest {
        multiplicity: [("client".to_string(), 0)].into(),
        params: [("web:port".to_string(), "9090".to_string())].into(),
        ..Default::default()
    };
    let p = plan(&hello_nodes(3), req).unwrap();
    assert_eq!(p.instances.len(), 1, "no clients");
    assert_eq!(value(&p, "client:ids"), Some(Some(String::new())));
    assert_eq!(value(&p, "web.1:port"), Some(Some("9090".into())));

    // An overridden input is not linked any more.
    let req = RunRequest { params: [("client:webserver.ready".to_string(), "yes".to_string())].into(), ..Default::default() };
    let p = plan(&hello_nodes(1), req).unwrap();
    assert_eq!(value(&p, "client.1:webserver.ready"), Some(Some("yes".into())));
    assert!(!p.links.iter().any(|l| l.target == "client.1:webserver.ready"));
}

#[test]
fn bad_requests_name_the_field_and_plan_nothing() {
    let with = |f: fn(&mut RunRequest)| {
        let mut r = RunRequest::default();
        f(&mut r);
        r
    };
    let table: Vec<(&str, RunRequest, i64, &str)> = vec![
        ("unknown node in multiplicity", with(|r| _ = r.multiplicity.insert("db".into(), 1)), 1, "multiplicity.db"),
        ("unknown node in connectors", with(|r| _ = r.connectors.insert("db".into(), "local".into())), 1, "connectors.db"),
        ("negative multiplicity", with(|r| _ = r.multiplicity.insert("client".into(), -1)), 1, "multiplicity.client"),
        ("over 1000 on one node", with(|r| _ = r.multiplicity.insert("client".into(), 1001)), 1, "multiplicity.client"),
        ("over 1000 in the run", RunRequest::default(), 1000, "multiplicity"),
        ("unknown connector", with(|r| _ = r.connectors.insert("web".into(), "cloud".into())), 1, "connectors.web"),
        ("override of no input", with(|r| _ = r.params.insert("web:nothing".into(), "x".into())), 1, "params.web:nothing"),
        ("override without a node", with(|r| _ = r.params.insert("port".into(), "x".into())), 1, "params.port"),
    ];
    for (what, req, clients, field) in table {
        let got = plan(&hello_nodes(clients), req).map(|_| ()).map_err(field_of);
        assert_eq!(got, Err(field.to_string()), "{what}");
    }
    let long = with(|r| _ = r.params.insert("client:greeting".into(), "x".repeat(5000)));
    assert!(matches!(plan(&hello_nodes(1), long), Err(Error::TooLarge(_))), "values over 4096 characters");
}

#[test]
fn a_single_image_runs_as_one_machine_node_with_bare_overrides() {
    let m = Module { kind: ModuleKind::Image, path: "p/client".into(), ..Default::default() };
    let nodes = NodeSpec::of_module(&m, 7).unwrap();
    assert_eq!(nodes, [NodeSpec { name: "machine".into(), node: Node { image: "p/client@7".into(), ..Default::default() } }]);
    let images: BTreeMap<String, ResolvedImage> = [("machine".to_string(), client())].into();
    let connectors = vec!["local".to_string()];
    for key in ["greeting", "machine:greeting"] {
        let request = RunRequest { params: [(key.to_string(), "hello".to_string())].into(), ..Default::default() };
        let built = BTreeMap::new();
        let input = PlanInput {
            module: "p/client",
            kind: ModuleKind::Image,
            nodes: &nodes,
            images: &images,
            request: &request,
            connectors: &connectors,
            build: false,
            built: &built,
        };
        let p = plan_run(&input).unwrap();
        assert_eq!(value(&p, "machine.1:greeting"), Some(Some("hello".into())), "{key}");
    }
    let project = Module { kind: ModuleKind::Project, path: "p".into(), ..Default::default() };
    assert_eq!(NodeSpec::of_module(&project, 1).map(|_| ()).map_err(field_of), Err("module".to_string()));
}

#[test]
fn a_build_runs_only_image_creation_and_a_built_image_skips_it() {
    let nodes = NodeSpec::of_module(&Module { kind: ModuleKind::Image, path: "p/web".into(), ..Default::default() }, 3).unwrap();
    let images: BTreeMap<String, ResolvedImage> = [("machine".to_string(), web())].into();
    let connectors = vec!["local".to_string()];
    let request = RunRequest::default();
    let plan_with = |build: bool, built: &BTreeMap<String, String>| {
        plan_run(&PlanInput {
            module: "p/web",
            kind: ModuleKind::Image,
            nodes: &nodes,
            images: &images,
            request: &request,
            connectors: &connectors,
            build,
            built,
        })
        .unwrap()
    };
    let none = BTreeMap::new();
    let build = plan_with(true, &none);
    assert_eq!(build.nodes["machine"].targets.keys().collect::<Vec<_>>(), ["packages", "recipe"], "a build runs no targets");
    assert_eq!(build.nodes["machine"].image_id, "host", "a build starts from the base image");
    let deploy = plan_with(false, &none);
    assert_eq!(deploy.nodes["machine"].targets.keys().collect::<Vec<_>>(), ["execute", "packages", "recipe"]);
    let built: BTreeMap<String, String> = [("machine".to_string(), "sha256:built".to_string())].into();
    let on_built = plan_with(false, &built);
    assert_eq!(on_built.nodes["machine"].targets.keys().collect::<Vec<_>>(), ["execute"], "recipes baked in are skipped");
    assert_eq!(on_built.nodes["machine"].image_id, "sha256:built");
    assert_eq!(build.nodes["machine"].build_key, on_built.nodes["machine"].build_key);
}

#[test]
fn the_build_key_follows_what_a_build_runs() {
    let level = |recipe: &str, execute: &str| Level {
        path: "p/web".into(),
        version: 1,
        module: Module {
            kind: ModuleKind::Image,
            recipe: recipe.into(),
            targets: model::Targets { execute: execute.into(), ..Default::default() },
            ..Default::default()
        },
    };
    let key = |recipe: &str, execute: &str, base: &str| build_key(&[level(recipe, execute)], base);
    assert_eq!(key("make", "run", "b"), key("make", "run again", "b"), "a new execute keeps the build");
    assert_ne!(key("make", "run", "b"), key("make install", "run", "b"), "a new recipe needs a new build");
    assert_ne!(key("make", "run", "b"), key("make", "run", "other base"), "another base image too");
    assert!(has_recipes(&[level("make", "")]) && !has_recipes(&[level("", "run")]));
}

#[test]
fn a_run_holds_a_bounded_number_of_parameter_values() {
    let params = |n: usize| (0..n).map(|i| param(&format!("k{i}"), Category::Output, None)).collect::<Vec<_>>();
    let nodes = |m: i64| vec![NodeSpec { name: "kv".into(), node: Node { image: "p/kv".into(), multiplicity: m, ..Default::default() } }];
    let run = |declared: usize, m: i64| {
        let images: BTreeMap<String, ResolvedImage> = [("kv".to_string(), image("p/kv", params(declared)))].into();
        let (connectors, built, request) = (vec!["local".to_string()], BTreeMap::new(), RunRequest::default());
        plan_run(&PlanInput {
            module: "p/kv",
            kind: ModuleKind::Deployment,
            nodes: &nodes(m),
            images: &images,
            request: &request,
            connectors: &connectors,
            build: false,
            built: &built,
        })
        .map(|p| p.instances.len())
        .map_err(field_of)
    };
    // kvbench's image: 13,000 keys on one instance; the same on 10 instances is refused, naming the field.
    assert_eq!(run(13_000, 1), Ok(1));
    assert_eq!(run(13_000, 10), Err("multiplicity".to_string()));
    assert_eq!(run(90, 1000), Ok(1000));
}
