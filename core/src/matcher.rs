//! Address sets and what a filter matches (any thread): a filter's emitters
//! and indexed-parameter filters resolved against the sets' members as the
//! configuration snapshot read them, so that a log is matched in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256};

use crate::spec::{Emitters, FilterDefinition, IndexedValues};

/// An address set's members, as one snapshot read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    pub name: String,
    pub members: HashMap<Address, Member>,
}

/// A member of an address set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Member {
    /// The block it is backfilled from, if it was added with one.
    pub start_block: Option<u64>,
    /// When it was added (microseconds since the epoch): a member removed
    /// and added again is a new member.
    pub added_at: i64,
}

impl AddressSet {
    pub fn contains(&self, address: &Address) -> bool {
        self.members.contains_key(address)
    }
}

/// A member's address as `address_set_members.address` holds it: lower-case
/// hex after `0x`, what the table's check and trigger make of any input.
pub fn stored_address(address: &Address) -> String {
    format!("{address:#x}")
}

/// The sets of a snapshot, by name.
pub type AddressSets = BTreeMap<String, Arc<AddressSet>>;

/// Which emitters a filter takes, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitterMatch {
    Contract(Address),
    Any,
    Set(Arc<AddressSet>),
}

/// The values one topic (1, 2 or 3) may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMatch {
    pub topic: usize,
    pub words: Arc<HashSet<B256>>,
    /// The set the words are the members of, if they come from one.
    pub set: Option<String>,
}

/// What a filter takes beyond its topic0, resolved against the sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMatcher {
    pub emitters: EmitterMatch,
    pub topics: Vec<TopicMatch>,
    /// Every set it reads, as emitters or in a topic.
    pub sets: Vec<Arc<AddressSet>>,
}

impl LogMatcher {
    /// Resolves `definition` against `sets`; a set that does not exist (its
    /// rows deleted behind the API's back) has no members.
    pub fn resolve(definition: &FilterDefinition, sets: &AddressSets) -> Self {
        let set = |name: &str| {
            sets.get(name).cloned().unwrap_or_else(|| {
                Arc::new(AddressSet {
                    name: name.to_string(),
                    members: HashMap::new(),
                })
            })
        };
        let emitters = match &definition.emitters {
            Emitters::Contract(address) => EmitterMatch::Contract(*address),
            Emitters::Any => EmitterMatch::Any,
            Emitters::Set(name) => EmitterMatch::Set(set(name)),
        };
        let topics = definition
            .indexed_filters
            .iter()
            .map(|f| match &f.values {
                IndexedValues::Literal { topics, .. } => TopicMatch {
                    topic: f.topic,
                    words: Arc::new(topics.iter().copied().collect()),
                    set: None,
                },
                IndexedValues::Set(name) => TopicMatch {
                    topic: f.topic,
                    words: Arc::new(set(name).members.keys().map(|a| a.into_word()).collect()),
                    set: Some(name.clone()),
                },
            })
            .collect();
        let sets = definition.address_sets().map(set).collect();
        LogMatcher {
            emitters,
            topics,
            sets,
        }
    }

    /// The same matcher with the set `name` cut down to `address` alone:
    /// what a member's own backfill asks for.
    pub fn restricted_to(&self, name: &str, address: Address, member: Member) -> Self {
        let only = Arc::new(AddressSet {
            name: name.to_string(),
            members: HashMap::from([(address, member)]),
        });
        let emitters = match &self.emitters {
            EmitterMatch::Set(set) if set.name == name => EmitterMatch::Set(only.clone()),
            other => other.clone(),
        };
        let topics = self
            .topics
            .iter()
            .map(|t| match &t.set {
                Some(set) if set == name => TopicMatch {
                    topic: t.topic,
                    words: Arc::new(HashSet::from([address.into_word()])),
                    set: t.set.clone(),
                },
                _ => t.clone(),
            })
            .collect();
        let sets = self
            .sets
            .iter()
            .map(|s| {
                if s.name == name {
                    only.clone()
                } else {
                    s.clone()
                }
            })
            .collect();
        LogMatcher {
            emitters,
            topics,
            sets,
        }
    }

    /// Whether it reads the set `name`.
    pub fn reads(&self, name: &str) -> bool {
        self.sets.iter().any(|s| s.name == name)
    }

    /// Whether a log of `address` with `topics` (topic0 already matched) is one of ours.
    pub fn matches(&self, address: &Address, topics: &[B256]) -> bool {
        let emitter = match &self.emitters {
            EmitterMatch::Contract(contract) => contract == address,
            EmitterMatch::Any => true,
            EmitterMatch::Set(set) => set.contains(address),
        };
        emitter
            && self.topics.iter().all(|t| {
                topics
                    .get(t.topic)
                    .is_some_and(|word| t.words.contains(word))
            })
    }

    /// The addresses it asks the node for, or None for any address.
    pub fn addresses(&self) -> Option<Vec<Address>> {
        match &self.emitters {
            EmitterMatch::Contract(address) => Some(vec![*address]),
            EmitterMatch::Any => None,
            EmitterMatch::Set(set) => Some(set.members.keys().copied().collect()),
        }
    }

    /// How many addresses it asks for (None: any).
    pub fn address_count(&self) -> Option<usize> {
        match &self.emitters {
            EmitterMatch::Contract(_) => Some(1),
            EmitterMatch::Any => None,
            EmitterMatch::Set(set) => Some(set.members.len()),
        }
    }

    /// The values topic `index` may take, when it is constrained.
    pub fn topic(&self, index: usize) -> Option<&HashSet<B256>> {
        self.topics
            .iter()
            .find(|t| t.topic == index)
            .map(|t| &*t.words)
    }
}
