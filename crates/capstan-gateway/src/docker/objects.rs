//! Engine API: secrets, configs and networks (`docker secret`, `docker
//! config`, `docker network`, and what `docker stack deploy/rm` does with
//! them). Each is in its access label's collection; the caller sees those
//! where they hold `secret.view`, `swarm-config.view` or `network.view`,
//! and anything else is "not found" to them. Secret data is never returned.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use capstan_core::rbac::{Operation, Resource, ACCESS_LABEL};
use capstan_core::{encode, Config, Network, Secret, Table};
use capstan_manager::state::Consistency;
use capstan_manager::swarm::api::SwarmApi;
use capstan_proto::v1::{self as pb, swarm_server::Swarm};
use capstan_store::{Action, Expect, Op};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::convert::{object_collection, require, resolve, rfc3339};
use super::filters::Filters;
use super::services::{out_of_sequence, required_version, swarm};
use super::{place, status_error};
use crate::api::op;
use crate::auth::{op as op_named, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, RawBody};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/secrets", get(list::<Secret>))
        .route("/secrets/create", post(create::<Secret>))
        .route(
            "/secrets/{id}",
            get(inspect::<Secret>).delete(remove::<Secret>),
        )
        .route("/secrets/{id}/update", post(update::<Secret>))
        .route("/configs", get(list::<Config>))
        .route("/configs/create", post(create::<Config>))
        .route(
            "/configs/{id}",
            get(inspect::<Config>).delete(remove::<Config>),
        )
        .route("/configs/{id}/update", post(update::<Config>))
        .route("/networks", get(network_list))
        .route("/networks/create", post(network_create))
        .route(
            "/networks/{id}",
            get(network_inspect).delete(network_remove),
        )
}

type Created = Result<tonic::Response<pb::ObjectResponse>, tonic::Status>;
type Removed = Result<tonic::Response<pb::RemoveResponse>, tonic::Status>;

/// What secrets and configs share, so one set of handlers serves both.
trait DataObject: Table + Clone + Send + Sync + 'static {
    /// `secret` or `config`, as the engine's messages say.
    const KIND: &'static str;
    /// The RBAC resource type: `secret` or `swarm-config`.
    const RBAC: &'static str;
    fn name(&self) -> &str;
    fn labels(&self) -> &BTreeMap<String, String>;
    fn labels_mut(&mut self) -> &mut BTreeMap<String, String>;
    fn created(&self) -> OffsetDateTime;
    /// The data reads may show (configs), or none (secrets).
    fn shown_data(&self) -> Option<&[u8]>;
    /// Whether the object holds exactly `data`.
    fn holds(&self, gw: &AppState, data: &[u8]) -> ApiResult<bool>;
    fn create(api: SwarmApi, req: pb::CreateDataObjectRequest) -> BoxFuture<'static, Created>;
    fn remove(api: SwarmApi, req: pb::RemoveRequest) -> BoxFuture<'static, Removed>;
}

impl DataObject for Secret {
    const KIND: &'static str = "secret";
    const RBAC: &'static str = "secret";
    fn name(&self) -> &str {
        &self.name
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
    fn labels_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.labels
    }
    fn created(&self) -> OffsetDateTime {
        self.created_at
    }
    fn shown_data(&self) -> Option<&[u8]> {
        None
    }
    fn holds(&self, gw: &AppState, data: &[u8]) -> ApiResult<bool> {
        let plain = gw.manager.swarm.secret_key.open(&self.sealed)?;
        Ok(plain == data)
    }
    fn create(api: SwarmApi, req: pb::CreateDataObjectRequest) -> BoxFuture<'static, Created> {
        Box::pin(async move { api.create_secret(tonic::Request::new(req)).await })
    }
    fn remove(api: SwarmApi, req: pb::RemoveRequest) -> BoxFuture<'static, Removed> {
        Box::pin(async move { api.remove_secret(tonic::Request::new(req)).await })
    }
}

impl DataObject for Config {
    const KIND: &'static str = "config";
    const RBAC: &'static str = "swarm-config";
    fn name(&self) -> &str {
        &self.name
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
    fn labels_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.labels
    }
    fn created(&self) -> OffsetDateTime {
        self.created_at
    }
    fn shown_data(&self) -> Option<&[u8]> {
        Some(&self.data)
    }
    fn holds(&self, _gw: &AppState, data: &[u8]) -> ApiResult<bool> {
        Ok(self.data == data)
    }
    fn create(api: SwarmApi, req: pb::CreateDataObjectRequest) -> BoxFuture<'static, Created> {
        Box::pin(async move { api.create_config(tonic::Request::new(req)).await })
    }
    fn remove(api: SwarmApi, req: pb::RemoveRequest) -> BoxFuture<'static, Removed> {
        Box::pin(async move { api.remove_config(tonic::Request::new(req)).await })
    }
}

/// The operation `<resource type>.<verb>` of a secret or config.
fn data_op<T: DataObject>(verb: &str) -> Operation {
    op_named(&format!("{}.{verb}", T::RBAC))
}

fn what<T: DataObject>(name: &str) -> String {
    format!("{} {name}", T::KIND)
}

/// A secret or config as the Engine's JSON.
fn data_object_json<T: DataObject>(o: &T, version: u64) -> Value {
    let mut spec = json!({"Name": o.name(), "Labels": o.labels()});
    if let Some(data) = o.shown_data() {
        spec["Data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
    }
    json!({
        "ID": o.id(),
        "Version": {"Index": version},
        "CreatedAt": rfc3339(o.created()),
        "UpdatedAt": rfc3339(o.created()),
        "Spec": spec,
    })
}

async fn visible<T: DataObject>(
    gw: &AppState,
    caller: &Caller,
    op: Operation,
) -> ApiResult<Vec<(T, u64)>> {
    Ok(gw
        .manager
        .list_all::<T>(Consistency::Linearizable)
        .await?
        .into_iter()
        .filter(|(o, _)| caller.may(op, Resource::Collection(&object_collection(o.labels()))))
        .collect())
}

async fn find<T: DataObject>(gw: &AppState, caller: &Caller, wanted: &str) -> ApiResult<(T, u64)> {
    let items = visible::<T>(gw, caller, data_op::<T>("view")).await?;
    resolve(&items, wanted, T::KIND, Table::id, |o| o.name()).cloned()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    filters: Option<String>,
}

/// `GET /secrets`, `GET /configs`: filters `id`, `label`, `name` (prefix)
/// and `names` (exact).
async fn list<T: DataObject>(
    State(gw): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let f = Filters::parse(q.filters.as_deref(), &["id", "label", "name", "names"])?;
    let items = visible::<T>(&gw, &caller, data_op::<T>("view")).await?;
    Ok(Json(
        items
            .iter()
            .filter(|(o, _)| {
                f.id_matches(&o.id())
                    && f.any("name", |n| o.name().starts_with(n))
                    && f.any("names", |n| o.name() == n)
                    && f.labels_match(o.labels())
            })
            .map(|(o, v)| data_object_json(o, *v))
            .collect(),
    ))
}

/// `GET /secrets/{id}`, `GET /configs/{id}`: by id, name or id prefix.
async fn inspect<T: DataObject>(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (o, v) = find::<T>(&gw, &caller, &id).await?;
    Ok(Json(data_object_json(&o, v)))
}

/// An Engine `SecretSpec` or `ConfigSpec`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DataSpecJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    driver: Option<Value>,
    #[serde(default)]
    templating: Option<Value>,
}

/// A checked spec: its name, labels and decoded data.
struct DataSpec {
    name: String,
    labels: BTreeMap<String, String>,
    data: Vec<u8>,
}

fn parse_data_spec(kind: &str, body: &[u8]) -> ApiResult<DataSpec> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let spec: DataSpecJson = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(format!("invalid {kind} spec: {path}: {}", e.into_inner()))
    })?;
    if spec.driver.as_ref().is_some_and(|d| !d.is_null()) {
        return Err(ApiError::invalid(format!(
            "Driver: {kind} drivers are not supported by Capstan; send the data itself"
        )));
    }
    if spec.templating.as_ref().is_some_and(|t| !t.is_null()) {
        return Err(ApiError::invalid(format!(
            "Templating: templated {kind}s are not supported by Capstan"
        )));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(spec.data.unwrap_or_default().trim())
        .map_err(|e| ApiError::invalid(format!("Data: not valid base64: {e}")))?;
    Ok(DataSpec {
        name: spec.name,
        labels: spec.labels.unwrap_or_default(),
        data,
    })
}

/// `POST /secrets/create`, `POST /configs/create`: `{Name, Labels, Data}`
/// (data base64) → 201 `{"ID"}`.
async fn create<T: DataObject>(
    State(gw): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut spec = parse_data_spec(T::KIND, &body)?;
    if spec.name.is_empty() {
        return Err(ApiError::invalid("Name: required"));
    }
    place(
        &caller,
        &mut spec.labels,
        data_op::<T>("create"),
        &what::<T>(&spec.name),
    )?;
    let request = pb::CreateDataObjectRequest {
        name: spec.name,
        data: spec.data,
        labels: spec.labels.into_iter().collect(),
    };
    let created = T::create(swarm(&gw), request)
        .await
        .map_err(status_error)?
        .into_inner();
    let object: Value = serde_json::from_slice(&created.object).map_err(ApiError::internal)?;
    let id = object["id"].as_str().unwrap_or_default().to_string();
    caller.note_object(&format!("{} {id}", T::KIND));
    Ok((StatusCode::CREATED, Json(json!({"ID": id}))))
}

/// `DELETE /secrets/{id}`, `DELETE /configs/{id}`; refused while a service
/// uses it.
async fn remove<T: DataObject>(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (o, _) = find::<T>(&gw, &caller, &id).await?;
    let path = object_collection(o.labels());
    caller.authorize(
        data_op::<T>("delete"),
        Resource::Collection(&path),
        &what::<T>(o.name()),
    )?;
    T::remove(swarm(&gw), pb::RemoveRequest { id: o.id() })
        .await
        .map_err(status_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct UpdateQuery {
    version: Option<String>,
}

/// `POST /secrets/{id}/update?version=N`, same for configs: only the
/// labels may change (name and data must stay as they are).
async fn update<T: DataObject>(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UpdateQuery>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let version = required_version(T::KIND, q.version.as_deref())?;
    let mut spec = parse_data_spec(T::KIND, &body)?;
    let (mut o, stored) = find::<T>(&gw, &caller, &id).await?;
    let name = what::<T>(o.name());
    let path = object_collection(o.labels());
    caller.authorize(data_op::<T>("update"), Resource::Collection(&path), &name)?;
    if version != stored {
        return Err(out_of_sequence(&name, version, stored));
    }
    let renamed = !spec.name.is_empty() && spec.name != o.name();
    if renamed || (!spec.data.is_empty() && !o.holds(&gw, &spec.data)?) {
        return Err(ApiError::invalid(format!(
            "only updates to Labels are allowed ({name} keeps its name and data)"
        )));
    }
    keep_collection(
        &caller,
        o.labels(),
        &mut spec.labels,
        data_op::<T>("update"),
        &name,
    )?;
    *o.labels_mut() = spec.labels;
    let write = Op {
        table: T::TABLE.into(),
        id: o.id(),
        action: Action::Put(encode(&o)),
        expect: Expect::Version(stored),
    };
    gw.manager
        .write(vec![write], false)
        .await
        .map_err(|e| match e {
            capstan_manager::ManagerError::Conflict(_) => out_of_sequence(&name, version, stored),
            other => other.into(),
        })?;
    Ok(StatusCode::OK)
}

/// New labels keep the object's access label unless they name another
/// collection, which needs `op` there too.
fn keep_collection(
    caller: &Caller,
    old: &BTreeMap<String, String>,
    new: &mut BTreeMap<String, String>,
    op: Operation,
    what: &str,
) -> ApiResult<()> {
    match (new.get(ACCESS_LABEL), old.get(ACCESS_LABEL)) {
        (None, Some(label)) => {
            new.insert(ACCESS_LABEL.to_string(), label.clone());
            Ok(())
        }
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some(_), _) => place(caller, new, op, what).map(|_| ()),
        (None, None) => Ok(()),
    }
}

// ------------------------------------------------------------ networks

/// A network as the engine shows a swarm network.
fn network_json(n: &Network) -> Value {
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": rfc3339(n.created_at),
        "Scope": "swarm",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": n.labels,
    })
}

async fn visible_networks(gw: &AppState, caller: &Caller) -> ApiResult<Vec<(Network, u64)>> {
    Ok(gw
        .manager
        .list_all::<Network>(Consistency::Linearizable)
        .await?
        .into_iter()
        .filter(|(n, _)| {
            caller.may(
                op!("network.view"),
                Resource::Collection(&object_collection(&n.labels)),
            )
        })
        .collect())
}

async fn find_network(gw: &AppState, caller: &Caller, wanted: &str) -> ApiResult<Network> {
    let items = visible_networks(gw, caller).await?;
    let (n, _) = resolve(&items, wanted, "network", |n| n.id.clone(), |n| &n.name)?;
    Ok(n.clone())
}

fn network_matches(f: &Filters, n: &Network) -> bool {
    f.any("driver", |d| d == n.driver)
        && f.id_matches(&n.id)
        && f.labels_match(&n.labels)
        && f.name_matches(&n.name)
        && f.any("scope", |s| s == "swarm")
        && f.any("type", |t| t == "custom")
}

/// `GET /networks`: the cluster's networks; filters `driver`, `id`,
/// `label`, `name`, `scope` (all are `swarm`), `type` (all are `custom`).
async fn network_list(
    State(gw): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let f = Filters::parse(
        q.filters.as_deref(),
        &["driver", "id", "label", "name", "scope", "type"],
    )?;
    for t in f.get("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::invalid(format!("invalid filter: 'type'='{t}'")));
        }
    }
    let items = visible_networks(&gw, &caller).await?;
    Ok(Json(
        items
            .iter()
            .filter(|(n, _)| network_matches(&f, n))
            .map(|(n, _)| network_json(n))
            .collect(),
    ))
}

/// `GET /networks/{id}`: by id, name or id prefix.
async fn network_inspect(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(network_json(&find_network(&gw, &caller, &id).await?)))
}

/// An Engine `NetworkCreateRequest`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct NetworkCreateJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    attachable: bool,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    ingress: bool,
    #[serde(default)]
    config_only: bool,
    #[serde(default)]
    config_from: Option<Value>,
    #[serde(default, rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(default, rename = "IPAM")]
    ipam: Option<Value>,
    #[serde(default)]
    options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Refuses what would change a network's meaning; returns warnings about
/// what is ignored.
fn check_network_request(r: &NetworkCreateJson) -> ApiResult<Vec<String>> {
    let refuse = |field: &str, why: &str| Err(ApiError::invalid(format!("{field}: {why}")));
    if r.name.trim().is_empty() {
        return refuse("Name", "required");
    }
    if r.ingress {
        return refuse("Ingress", "Capstan has no ingress network");
    }
    if r.internal {
        return refuse("Internal", "internal networks are not supported by Capstan");
    }
    if r.enable_ipv6 {
        return refuse("EnableIPv6", "IPv6 networks are not supported by Capstan");
    }
    if r.config_only
        || r.config_from
            .as_ref()
            .is_some_and(|c| !c.is_null() && c != &json!({}))
    {
        return refuse(
            "ConfigOnly",
            "configuration-only networks are not supported by Capstan",
        );
    }
    if !matches!(r.scope.as_str(), "" | "swarm") {
        return refuse(
            "Scope",
            "Capstan networks are cluster-wide: use scope swarm",
        );
    }
    let mut warnings = Vec::new();
    let ipam_set = r.ipam.as_ref().is_some_and(|i| {
        i["Config"].as_array().is_some_and(|c| !c.is_empty())
            || i["Options"].as_object().is_some_and(|o| !o.is_empty())
            || !matches!(i["Driver"].as_str(), None | Some("") | Some("default"))
    });
    if ipam_set {
        warnings.push("IPAM settings are not supported by Capstan and were ignored".to_string());
    }
    if r.options.as_ref().is_some_and(|o| !o.is_empty()) {
        warnings.push("driver options are not supported by Capstan and were ignored".to_string());
    }
    Ok(warnings)
}

/// `POST /networks/create` → 201 `{"Id", "Warning"}`.
async fn network_create(
    State(gw): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut de = serde_json::Deserializer::from_slice(&body);
    let r: NetworkCreateJson = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(format!(
            "invalid network create request: {path}: {}",
            e.into_inner()
        ))
    })?;
    let warnings = check_network_request(&r)?;
    let mut labels = r.labels.clone().unwrap_or_default();
    let what = format!("network {}", r.name);
    let path = place(&caller, &mut labels, op!("network.create"), &what)?;
    if r.attachable {
        require(&caller, op!("network.create.attachable"), &path, &what)?;
    }
    let request = pb::CreateNetworkRequest {
        name: r.name.clone(),
        driver: r.driver.clone(),
        attachable: r.attachable,
        labels: labels.into_iter().collect(),
    };
    let created = swarm(&gw)
        .create_network(tonic::Request::new(request))
        .await
        .map_err(status_error)?
        .into_inner();
    let network: Network = serde_json::from_slice(&created.object).map_err(ApiError::internal)?;
    caller.note_object(&format!("network {} ({})", network.name, network.id));
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": network.id, "Warning": warnings.join("; ")})),
    ))
}

/// `DELETE /networks/{id}`: refused while a service uses it.
async fn network_remove(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let n = find_network(&gw, &caller, &id).await?;
    let path = object_collection(&n.labels);
    caller.authorize(
        op!("network.remove"),
        Resource::Collection(&path),
        &format!("network {}", n.name),
    )?;
    swarm(&gw)
        .remove_network(tonic::Request::new(pb::RemoveRequest { id: n.id }))
        .await
        .map_err(status_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_specs_are_checked() {
        let s = parse_data_spec("secret", br#"{"Name":"s","Labels":null,"Data":"eAo="}"#)
            .expect("valid");
        assert_eq!(
            (s.name.as_str(), s.data.as_slice()),
            ("s", b"x\n".as_slice())
        );
        let e = parse_data_spec("secret", br#"{"Name":"s","Data":"%%"}"#)
            .err()
            .expect("bad base64");
        assert!(
            e.message.starts_with("Data: not valid base64"),
            "{}",
            e.message
        );
        let e = parse_data_spec("secret", br#"{"Name":"s","Driver":{"Name":"vault"}}"#)
            .err()
            .expect("driver");
        assert!(e.message.starts_with("Driver:"), "{}", e.message);
        let e = parse_data_spec("config", br#"{"Name":1}"#)
            .err()
            .expect("type");
        assert!(e.message.contains("Name"), "{}", e.message);
    }

    #[test]
    fn configs_show_their_data_and_secrets_do_not() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let c = Config {
            id: "c".into(),
            name: "n".into(),
            labels: BTreeMap::new(),
            data: b"hi".to_vec(),
            created_at: t,
        };
        assert_eq!(data_object_json(&c, 3)["Spec"]["Data"], "aGk=");
        let s = Secret {
            id: "s".into(),
            name: "n".into(),
            labels: BTreeMap::new(),
            sealed: vec![1, 2],
            created_at: t,
        };
        let v = data_object_json(&s, 3);
        assert!(v["Spec"].get("Data").is_none(), "{v}");
        assert_eq!(v["Version"]["Index"], 3);
    }

    #[test]
    fn network_requests_refuse_what_capstan_cannot_do() {
        let parse = |v: Value| serde_json::from_value::<NetworkCreateJson>(v).expect("parses");
        let ok = check_network_request(&parse(
            json!({"Name": "n", "Driver": "overlay", "IPAM": {"Driver": "default", "Config": [], "Options": {}}}),
        ));
        assert_eq!(ok.expect("valid"), Vec::<String>::new());
        let warned = check_network_request(&parse(
            json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]}}),
        ));
        assert_eq!(warned.expect("valid").len(), 1);
        for (bad, field) in [
            (json!({"Name": "n", "Internal": true}), "Internal"),
            (json!({"Name": "n", "Ingress": true}), "Ingress"),
            (json!({"Name": "n", "Scope": "local"}), "Scope"),
            (json!({"Driver": "overlay"}), "Name"),
        ] {
            let e = check_network_request(&parse(bad)).expect_err("refused");
            assert!(e.message.starts_with(field), "{}", e.message);
        }
        let n = Network {
            id: "i".into(),
            name: "n".into(),
            driver: "overlay".into(),
            attachable: true,
            labels: BTreeMap::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let v = network_json(&n);
        assert_eq!(
            (v["Scope"].as_str(), v["Attachable"].as_bool()),
            (Some("swarm"), Some(true))
        );
        assert_eq!(v["IPAM"]["Driver"], "default");
    }
}
