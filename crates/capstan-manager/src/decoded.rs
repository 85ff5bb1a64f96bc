//! Decoded records kept by table, id and version, so that listing a table
//! decodes only what changed since the last list. A version is the log
//! index of the write that made that content, so a cached record is never
//! stale: a newer write has a newer version.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use capstan_core::{decode, DecodeError, Table};
use capstan_store::StoredObject;

/// One table's records by id: `(version, record)`.
type Entries<T> = Mutex<HashMap<String, (u64, Arc<T>)>>;

/// The cache of every table listed so far.
#[derive(Default)]
pub(crate) struct DecodedCache {
    tables: Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps hold no invariant a panicking holder could break.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DecodedCache {
    fn entries<T: Table>(&self) -> Arc<Entries<T>> {
        let mut tables = lock(&self.tables);
        let any = tables
            .entry(T::TABLE)
            .or_insert_with(|| Arc::new(Entries::<T>::default()))
            .clone();
        match any.downcast::<Entries<T>>() {
            Ok(entries) => entries,
            // Two types claiming one table: keep the latest asker's.
            Err(_) => {
                let fresh = Arc::new(Entries::<T>::default());
                tables.insert(T::TABLE, fresh.clone());
                fresh
            }
        }
    }

    /// Decodes a whole table's objects, reusing what an earlier list
    /// decoded at the same version, and forgets objects no longer there.
    pub(crate) fn decode_all<T: Table>(
        &self,
        objects: &[StoredObject],
    ) -> Result<Vec<(T, u64)>, DecodeError> {
        Ok(self
            .decode_all_shared::<T>(objects)?
            .into_iter()
            .map(|(record, version)| (T::clone(&record), version))
            .collect())
    }

    /// [`Self::decode_all`] without copying the records: each is shared
    /// with the cache, which is what makes listing a large table cheap.
    pub(crate) fn decode_all_shared<T: Table>(
        &self,
        objects: &[StoredObject],
    ) -> Result<Vec<(Arc<T>, u64)>, DecodeError> {
        let entries = self.entries::<T>();
        let mut map = lock(&entries);
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            let record = match map.get(&o.id) {
                Some((version, record)) if *version == o.version => record.clone(),
                _ => {
                    let record = Arc::new(decode::<T>(&o.value)?);
                    map.insert(o.id.clone(), (o.version, record.clone()));
                    record
                }
            };
            out.push((record, o.version));
        }
        if map.len() > objects.len() {
            let live: HashSet<&str> = objects.iter().map(|o| o.id.as_str()).collect();
            map.retain(|id, _| live.contains(id.as_str()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use capstan_core::encode;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        id: String,
        n: u64,
    }

    impl Table for Rec {
        const TABLE: &'static str = "recs";
        fn id(&self) -> String {
            self.id.clone()
        }
    }

    fn obj(id: &str, n: u64, version: u64) -> StoredObject {
        StoredObject {
            table: Rec::TABLE.into(),
            id: id.into(),
            version,
            created_index: 1,
            value: encode(&Rec { id: id.into(), n }),
        }
    }

    #[test]
    fn a_new_version_is_decoded_again_and_removed_objects_are_forgotten() {
        let cache = DecodedCache::default();
        let first = cache
            .decode_all::<Rec>(&[obj("a", 1, 5), obj("b", 2, 6)])
            .expect("decodes");
        assert_eq!(first[1].0.n, 2);
        // Same version, different bytes: the cached record stands (the store
        // never rewrites a version), which shows the cache is used.
        let mut same = obj("a", 99, 5);
        same.value = encode(&Rec {
            id: "a".into(),
            n: 99,
        });
        let again = cache.decode_all::<Rec>(&[same]).expect("decodes");
        assert_eq!(
            again,
            vec![(
                Rec {
                    id: "a".into(),
                    n: 1
                },
                5
            )]
        );
        assert_eq!(lock(&cache.entries::<Rec>()).len(), 1, "b was forgotten");
        let newer = cache.decode_all::<Rec>(&[obj("a", 7, 8)]).expect("decodes");
        assert_eq!(
            newer,
            vec![(
                Rec {
                    id: "a".into(),
                    n: 7
                },
                8
            )]
        );
    }

    #[test]
    fn a_bad_record_is_an_error() {
        let cache = DecodedCache::default();
        let mut bad = obj("a", 1, 5);
        bad.value = b"{not json".to_vec();
        assert!(cache.decode_all::<Rec>(&[bad]).is_err());
    }

    #[test]
    fn shared_lists_hand_out_the_cached_record_until_it_changes() {
        let cache = DecodedCache::default();
        let one = cache
            .decode_all_shared::<Rec>(&[obj("a", 1, 5)])
            .expect("decodes");
        let two = cache
            .decode_all_shared::<Rec>(&[obj("a", 1, 5)])
            .expect("decodes");
        assert!(Arc::ptr_eq(&one[0].0, &two[0].0), "the record was copied");
        let newer = cache
            .decode_all_shared::<Rec>(&[obj("a", 2, 9)])
            .expect("decodes");
        assert!(!Arc::ptr_eq(&one[0].0, &newer[0].0));
        assert_eq!((newer[0].0.n, newer[0].1), (2, 9));
        // The earlier list still holds what it read.
        assert_eq!(one[0].0.n, 1);
    }
}
