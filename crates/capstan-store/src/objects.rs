//! Reading application objects out of the engine.

use crate::codec::{object_key, split_object_key, ObjectRecord};
use crate::engine::Space;
use crate::error::StoreError;
use crate::store_dir::StoreDir;
use crate::types::StoredObject;

/// The record of one object, if present.
pub(crate) fn get_record(
    dir: &StoreDir,
    table: &str,
    id: &str,
) -> Result<Option<ObjectRecord>, StoreError> {
    let bytes = dir
        .engine()
        .get(Space::Objects, &object_key(table, id))
        .map_err(StoreError::engine("reading an object"))?;
    match bytes {
        None => Ok(None),
        Some(bytes) => ObjectRecord::decode(&bytes)
            .map(Some)
            .map_err(|r| dir.corrupt(format!("object {table}/{id}: {r}"))),
    }
}

/// One object, if present.
pub(crate) fn get(
    dir: &StoreDir,
    table: &str,
    id: &str,
) -> Result<Option<StoredObject>, StoreError> {
    Ok(get_record(dir, table, id)?.map(|rec| to_object(table.to_string(), id.to_string(), rec)))
}

/// Objects of `table` whose id starts with `prefix`, by id; at most `limit`
/// of them unless `limit` is 0.
pub(crate) fn list(
    dir: &StoreDir,
    table: &str,
    prefix: &str,
    limit: usize,
) -> Result<Vec<StoredObject>, StoreError> {
    let scan = dir
        .engine()
        .scan_prefix(Space::Objects, &object_key(table, prefix));
    let mut out = Vec::new();
    for item in scan {
        if limit != 0 && out.len() >= limit {
            break;
        }
        let (key, value) = item.map_err(StoreError::engine("listing objects"))?;
        out.push(decode(dir, &key, &value)?);
    }
    Ok(out)
}

/// Every object, in key order (table, then id).
pub(crate) fn all(dir: &StoreDir) -> Result<Vec<StoredObject>, StoreError> {
    let mut out = Vec::new();
    for_each(dir, |object| {
        out.push(object);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with every object, in key order.
pub(crate) fn for_each(
    dir: &StoreDir,
    mut f: impl FnMut(StoredObject) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let scan = dir.engine().range(
        Space::Objects,
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
    );
    for item in scan {
        let (key, value) = item.map_err(StoreError::engine("reading all objects"))?;
        f(decode(dir, &key, &value)?)?;
    }
    Ok(())
}

/// Decodes one stored pair of the objects space.
pub(crate) fn decode(dir: &StoreDir, key: &[u8], value: &[u8]) -> Result<StoredObject, StoreError> {
    let (table, id) = split_object_key(key).map_err(|r| dir.corrupt(r))?;
    let rec = ObjectRecord::decode(value)
        .map_err(|r| dir.corrupt(format!("object {table}/{id}: {r}")))?;
    Ok(to_object(table, id, rec))
}

/// Joins a record with its name.
pub(crate) fn to_object(table: String, id: String, rec: ObjectRecord) -> StoredObject {
    StoredObject {
        table,
        id,
        version: rec.version,
        created_index: rec.created_index,
        value: rec.value,
    }
}

/// The record part of an object.
pub(crate) fn to_record(object: &StoredObject) -> ObjectRecord {
    ObjectRecord {
        version: object.version,
        created_index: object.created_index,
        value: object.value.clone(),
    }
}
