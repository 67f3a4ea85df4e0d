//! The consumer group coordinator (Kafka's classic group protocol): members
//! join, the leader assigns partitions, everyone syncs, heartbeats keep a
//! member in; a member that leaves or goes quiet past its session timeout
//! starts a rebalance.
//!
//! As Kafka's coordinator does, a join round waits for every known member
//! to rejoin (up to the longest rebalance timeout among them; a member
//! that does not is removed) before it completes, so consumers starting
//! together settle in one or two rounds. Committed offsets are the
//! storage's; membership lives here, in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::storage::lock;

/// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
pub const MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
pub const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;

/// Kafka waits 3 s for more members before completing a new group's first
/// round (`group.initial.rebalance.delay.ms`); here a lone consumer would
/// pay that on every start, so the first round completes at once and a
/// member joining later starts a second one.
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::ZERO;

/// How long a member id handed out with MEMBER_ID_REQUIRED waits for its join.
const PENDING_MEMBER_WAIT: Duration = Duration::from_secs(30);

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    last_heard: Instant,
    assignment: Bytes,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Group {
    state: Option<State>,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending_members: HashMap<String, Instant>,
    /// Members whose JoinGroup waits for the round to complete, and the version they asked with.
    joining: HashMap<String, oneshot::Sender<JoinGroupResponse>>,
    syncing: HashMap<String, oneshot::Sender<SyncGroupResponse>>,
    /// When the current join round gives up on members that have not rejoined.
    round_deadline: Option<Instant>,
}

impl Group {
    fn state(&self) -> State {
        self.state.unwrap_or(State::Empty)
    }

    /// A protocol every member supports: the one most members list first
    /// among those (Kafka's vote), None if there is no common one.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let common: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| common.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        common
            .iter()
            .max_by_key(|name| {
                (
                    votes.get(*name).copied().unwrap_or(0),
                    std::cmp::Reverse(**name),
                )
            })
            .map(|n| (*n).to_owned())
    }

    /// Whether `protocols` shares a protocol with every member.
    fn accepts(&self, protocol_type: &str, protocols: &[(String, Bytes)], except: &str) -> bool {
        if self.members.keys().all(|id| id == except) {
            return true;
        }
        self.protocol_type
            .as_deref()
            .is_none_or(|t| t == protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .iter()
                    .filter(|(id, _)| *id != except)
                    .all(|(_, m)| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        let longest = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        let delay = if self.state() == State::Empty {
            INITIAL_REBALANCE_DELAY
        } else {
            Duration::ZERO
        };
        self.state = Some(State::PreparingRebalance);
        self.round_deadline = Some(now + longest.max(delay));
        // A sync waiting for the leader's assignment will not get one now.
        for (_, waiting) in self.syncing.drain() {
            let _ = waiting.send(sync_error(ResponseError::RebalanceInProgress));
        }
    }

    /// Completes the join round if every member has rejoined (or `force`,
    /// past the deadline: members that have not are removed).
    fn try_complete_join(&mut self, force: bool) {
        if self.state() != State::PreparingRebalance {
            return;
        }
        let all_in = self.members.keys().all(|id| self.joining.contains_key(id));
        if !all_in && !force {
            return;
        }
        let absent: Vec<String> = self
            .members
            .keys()
            .filter(|id| !self.joining.contains_key(*id))
            .cloned()
            .collect();
        for id in absent {
            self.members.remove(&id);
        }
        self.round_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = Some(State::Empty);
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = Some(State::CompletingRebalance);
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.last_heard = Instant::now();
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let everyone: Vec<JoinGroupResponseMember> = self
            .members
            .iter()
            .map(|(id, m)| {
                JoinGroupResponseMember::default()
                    .with_member_id(text(id.clone()))
                    .with_group_instance_id(m.group_instance_id.clone().map(text))
                    .with_metadata(m.metadata(&protocol))
            })
            .collect();
        for (id, waiting) in self.joining.drain() {
            let response = JoinGroupResponse::default()
                .with_generation_id(self.generation)
                .with_protocol_type(self.protocol_type.clone().map(text))
                .with_protocol_name(Some(text(protocol.clone())))
                .with_leader(text(leader.clone()))
                .with_member_id(text(id.clone()))
                .with_members(if id == leader {
                    everyone.clone()
                } else {
                    Vec::new()
                });
            let _ = waiting.send(response);
        }
    }

    /// Removes members (left, expired or fenced) and rebalances the rest.
    fn remove_members(&mut self, ids: &[String], now: Instant) {
        let mut removed = false;
        for id in ids {
            if self.members.remove(id).is_some() {
                removed = true;
            }
            if let Some(w) = self.joining.remove(id) {
                let _ = w.send(join_error(ResponseError::UnknownMemberId, id));
            }
            if let Some(w) = self.syncing.remove(id) {
                let _ = w.send(sync_error(ResponseError::UnknownMemberId));
            }
        }
        if !removed {
            return;
        }
        match self.state() {
            State::Stable | State::CompletingRebalance => {
                if self.members.is_empty() {
                    self.state = Some(State::Empty);
                    self.generation += 1;
                    self.leader = None;
                    self.protocol = None;
                } else {
                    self.prepare_rebalance(now);
                }
            }
            State::PreparingRebalance => self.try_complete_join(false),
            State::Empty => {}
        }
    }
}

fn join_error(error: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_generation_id(-1)
        .with_member_id(text(member_id))
}

fn sync_error(error: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

/// A member's identity as clients describe it.
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub struct GroupDescription {
    pub state: State,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// Who sent a request: for members' descriptions.
pub struct Client<'a> {
    pub client_id: &'a str,
    pub host: &'a str,
}

#[derive(Clone, Default)]
pub struct Coordinator {
    groups: Arc<Mutex<HashMap<String, Group>>>,
}

impl Coordinator {
    pub async fn join(
        &self,
        r: &JoinGroupRequest,
        version: i16,
        client: Client<'_>,
    ) -> JoinGroupResponse {
        let group_id = r.group_id.as_str();
        let member_id = r.member_id.as_str();
        let reject = |e: ResponseError| join_error(e, member_id);
        if group_id.is_empty() {
            return reject(ResponseError::InvalidGroupId);
        }
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&r.session_timeout_ms) {
            return reject(ResponseError::InvalidSessionTimeout);
        }
        if r.protocol_type.is_empty() || r.protocols.is_empty() {
            return reject(ResponseError::InconsistentGroupProtocol);
        }
        let protocols: Vec<(String, Bytes)> = r
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect();
        let rebalance_ms = if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        };
        let now = Instant::now();
        let waiting = {
            let mut groups = lock(&self.groups);
            let group = groups.entry(group_id.to_owned()).or_default();
            let instance = r.group_instance_id.as_ref().map(|s| s.to_string());
            let mut id = member_id.to_owned();
            if id.is_empty() {
                if !group.accepts(&r.protocol_type, &protocols, "") {
                    return reject(ResponseError::InconsistentGroupProtocol);
                }
                id = format!("{}-{}", client.client_id, uuid::Uuid::new_v4());
                // A static member coming back replaces its old self.
                if let Some(instance) = &instance {
                    let old: Vec<String> = group
                        .members
                        .iter()
                        .filter(|(_, m)| m.group_instance_id.as_ref() == Some(instance))
                        .map(|(id, _)| id.clone())
                        .collect();
                    group.remove_members(&old, now);
                } else if version >= 4 {
                    group.pending_members.insert(id.clone(), now);
                    return join_error(ResponseError::MemberIdRequired, &id);
                }
            } else if !group.members.contains_key(&id)
                && group.pending_members.remove(&id).is_none()
            {
                return reject(ResponseError::UnknownMemberId);
            } else if !group.accepts(&r.protocol_type, &protocols, &id) {
                return reject(ResponseError::InconsistentGroupProtocol);
            }
            let unchanged = group
                .members
                .get(&id)
                .is_some_and(|m| m.protocols == protocols);
            let is_leader = group.leader.as_deref() == Some(id.as_str());
            let assignment = group
                .members
                .get(&id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            group.members.insert(
                id.clone(),
                Member {
                    group_instance_id: instance,
                    client_id: client.client_id.to_owned(),
                    client_host: client.host.to_owned(),
                    session_timeout: Duration::from_millis(r.session_timeout_ms as u64),
                    rebalance_timeout: Duration::from_millis(rebalance_ms.max(0) as u64),
                    protocol_type: r.protocol_type.to_string(),
                    protocols,
                    last_heard: now,
                    assignment,
                },
            );
            group.protocol_type = Some(r.protocol_type.to_string());
            // A follower rejoining with nothing new gets the current generation back.
            if group.state() == State::Stable && unchanged && !is_leader {
                return JoinGroupResponse::default()
                    .with_generation_id(group.generation)
                    .with_protocol_type(group.protocol_type.clone().map(text))
                    .with_protocol_name(group.protocol.clone().map(text))
                    .with_leader(text(group.leader.clone().unwrap_or_default()))
                    .with_member_id(text(id));
            }
            let (tx, rx) = oneshot::channel();
            if let Some(old) = group.joining.insert(id.clone(), tx) {
                let _ = old.send(join_error(ResponseError::UnknownMemberId, &id));
            }
            if group.state() != State::PreparingRebalance {
                group.prepare_rebalance(now);
            }
            group.try_complete_join(group.round_deadline.is_some_and(|d| d <= now));
            rx
        };
        waiting
            .await
            .unwrap_or_else(|_| reject(ResponseError::RebalanceInProgress))
    }

    pub async fn sync(&self, r: &SyncGroupRequest) -> SyncGroupResponse {
        let waiting = {
            let mut groups = lock(&self.groups);
            let Some(group) = groups.get_mut(r.group_id.as_str()) else {
                return sync_error(ResponseError::UnknownMemberId);
            };
            let id = r.member_id.to_string();
            let Some(member) = group.members.get_mut(&id) else {
                return sync_error(ResponseError::UnknownMemberId);
            };
            member.last_heard = Instant::now();
            if r.generation_id != group.generation {
                return sync_error(ResponseError::IllegalGeneration);
            }
            let type_ok = r
                .protocol_type
                .as_ref()
                .is_none_or(|t| Some(t.as_str()) == group.protocol_type.as_deref());
            let name_ok = r
                .protocol_name
                .as_ref()
                .is_none_or(|n| Some(n.as_str()) == group.protocol.as_deref());
            if !type_ok || !name_ok {
                return sync_error(ResponseError::InconsistentGroupProtocol);
            }
            let answer = |g: &Group, assignment: Bytes| {
                SyncGroupResponse::default()
                    .with_protocol_type(g.protocol_type.clone().map(text))
                    .with_protocol_name(g.protocol.clone().map(text))
                    .with_assignment(assignment)
            };
            match group.state() {
                State::Empty => return sync_error(ResponseError::UnknownMemberId),
                State::PreparingRebalance => return sync_error(ResponseError::RebalanceInProgress),
                State::Stable => {
                    let assignment = group.members[&id].assignment.clone();
                    return answer(group, assignment);
                }
                State::CompletingRebalance => {}
            }
            let (tx, rx) = oneshot::channel();
            group.syncing.insert(id.clone(), tx);
            if group.leader.as_deref() == Some(id.as_str()) {
                for a in &r.assignments {
                    if let Some(m) = group.members.get_mut(a.member_id.as_str()) {
                        m.assignment = a.assignment.clone();
                    }
                }
                group.state = Some(State::Stable);
                let waiting: Vec<_> = group.syncing.drain().collect();
                for (member, w) in waiting {
                    let assignment = group
                        .members
                        .get(&member)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    let _ = w.send(answer(group, assignment));
                }
            }
            rx
        };
        waiting
            .await
            .unwrap_or_else(|_| sync_error(ResponseError::RebalanceInProgress))
    }

    pub fn heartbeat(&self, r: &HeartbeatRequest) -> Result<(), ResponseError> {
        let mut groups = lock(&self.groups);
        let group = groups
            .get_mut(r.group_id.as_str())
            .ok_or(ResponseError::UnknownMemberId)?;
        let member = group
            .members
            .get_mut(r.member_id.as_str())
            .ok_or(ResponseError::UnknownMemberId)?;
        member.last_heard = Instant::now();
        if r.generation_id != group.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        match group.state() {
            State::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Removes the members leaving: the request's error, and each member's.
    pub fn leave(
        &self,
        r: &LeaveGroupRequest,
        version: i16,
    ) -> (Option<ResponseError>, Vec<MemberResponse>) {
        let mut groups = lock(&self.groups);
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            r.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(r.member_id.to_string(), None)]
        };
        let Some(group) = groups.get_mut(r.group_id.as_str()) else {
            return (Some(ResponseError::UnknownMemberId), Vec::new());
        };
        let mut answers = Vec::new();
        let mut gone = Vec::new();
        for (member_id, instance) in leaving {
            let id = if member_id.is_empty() {
                instance.as_ref().and_then(|i| {
                    group
                        .members
                        .iter()
                        .find(|(_, m)| m.group_instance_id.as_ref() == Some(i))
                        .map(|(id, _)| id.clone())
                })
            } else {
                Some(member_id.clone())
            };
            let known = id.as_ref().is_some_and(|id| group.members.contains_key(id));
            answers.push(
                MemberResponse::default()
                    .with_member_id(text(member_id))
                    .with_group_instance_id(instance.map(text))
                    .with_error_code(if known {
                        0
                    } else {
                        ResponseError::UnknownMemberId.code()
                    }),
            );
            if let (true, Some(id)) = (known, id) {
                gone.push(id);
            }
        }
        let error = (version < 3 && gone.is_empty()).then_some(ResponseError::UnknownMemberId);
        group.remove_members(&gone, Instant::now());
        (error, answers)
    }

    /// Whether a commit with this generation and member may be stored
    /// (Kafka's rules: a group only keeping offsets commits with
    /// generation -1 and no member).
    pub fn check_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
    ) -> Result<(), ResponseError> {
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(group_id) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        if generation < 0 && member_id.is_empty() && group.members.is_empty() {
            return Ok(());
        }
        let member = group
            .members
            .get_mut(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        member.last_heard = Instant::now();
        if generation != group.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        if group.state() == State::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Removes members whose session ran out and completes join rounds past
    /// their deadline; called every tick.
    pub fn expire(&self, now: Instant) {
        let mut groups = lock(&self.groups);
        for group in groups.values_mut() {
            group
                .pending_members
                .retain(|_, since| now.duration_since(*since) < PENDING_MEMBER_WAIT);
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(id, m)| {
                    !group.joining.contains_key(*id)
                        && now.duration_since(m.last_heard) > m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            group.remove_members(&expired, now);
            if group.round_deadline.is_some_and(|d| d <= now) {
                group.try_complete_join(true);
            }
        }
        groups.retain(|_, g| g.state() != State::Empty || !g.pending_members.is_empty());
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = lock(&self.groups);
        let group = groups.get(group_id)?;
        let protocol = group.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            state: group.state(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: group
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Groups with members: (id, protocol type, state).
    pub fn list(&self) -> Vec<(String, String, State)> {
        let groups = lock(&self.groups);
        groups
            .iter()
            .filter(|(_, g)| !g.members.is_empty())
            .map(|(id, g)| {
                (
                    id.clone(),
                    g.members
                        .values()
                        .next()
                        .map(|m| m.protocol_type.clone())
                        .unwrap_or_default(),
                    g.state(),
                )
            })
            .collect()
    }

    /// Whether the group has members (it cannot be deleted then).
    pub fn has_members(&self, group_id: &str) -> bool {
        lock(&self.groups)
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }
}

pub fn group_id(id: &str) -> GroupId {
    GroupId(text(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;

    fn join_request(member: &str) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(group_id("g"))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(5_000)
            .with_member_id(text(member))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(b"m"))])
    }

    fn client() -> Client<'static> {
        Client {
            client_id: "c",
            host: "/127.0.0.1",
        }
    }

    async fn join_new(c: &Coordinator) -> String {
        let first = c.join(&join_request(""), 5, client()).await;
        assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
        first.member_id.to_string()
    }

    fn sync_request(
        member: &str,
        generation: i32,
        assign: &[(&str, &'static [u8])],
    ) -> SyncGroupRequest {
        SyncGroupRequest::default()
            .with_group_id(group_id("g"))
            .with_generation_id(generation)
            .with_member_id(text(member))
            .with_assignments(
                assign
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(text(*m))
                            .with_assignment(Bytes::from_static(a))
                    })
                    .collect(),
            )
    }

    #[tokio::test]
    async fn a_round_waits_for_every_known_member() {
        let c = Coordinator::default();
        let a = join_new(&c).await;
        let joined = c.join(&join_request(&a), 5, client()).await;
        assert_eq!((joined.error_code, joined.generation_id), (0, 1));
        assert_eq!(joined.leader.as_str(), a);
        let synced = c.sync(&sync_request(&a, 1, &[(a.as_str(), b"p0-2")])).await;
        assert_eq!(synced.assignment, Bytes::from_static(b"p0-2"));

        // A second member starts a round that waits for the first to rejoin.
        let b = join_new(&c).await;
        let c2 = c.clone();
        let b2 = b.clone();
        let b_join = tokio::spawn(async move { c2.join(&join_request(&b2), 5, client()).await });
        tokio::task::yield_now().await;
        assert!(!b_join.is_finished());
        let hb = HeartbeatRequest::default()
            .with_group_id(group_id("g"))
            .with_generation_id(1)
            .with_member_id(text(a.clone()));
        assert_eq!(c.heartbeat(&hb), Err(ResponseError::RebalanceInProgress));
        let a_join = c.join(&join_request(&a), 5, client()).await;
        let b_join = b_join.await.unwrap();
        assert_eq!((a_join.generation_id, b_join.generation_id), (2, 2));
        assert_eq!(a_join.members.len(), 2, "the leader sees everyone");
        assert!(b_join.members.is_empty());

        // The follower's sync waits for the leader's assignment.
        let c3 = c.clone();
        let b3 = b.clone();
        let b_sync = tokio::spawn(async move { c3.sync(&sync_request(&b3, 2, &[])).await });
        tokio::task::yield_now().await;
        assert!(!b_sync.is_finished());
        c.sync(&sync_request(
            &a,
            2,
            &[(a.as_str(), b"p0"), (b.as_str(), b"p1")],
        ))
        .await;
        assert_eq!(b_sync.await.unwrap().assignment, Bytes::from_static(b"p1"));
        assert_eq!(c.describe("g").unwrap().state, State::Stable);
    }

    #[tokio::test]
    async fn a_silent_member_is_dropped_after_its_session() {
        let c = Coordinator::default();
        let a = join_new(&c).await;
        c.join(&join_request(&a), 5, client()).await;
        c.sync(&sync_request(&a, 1, &[])).await;
        let b = join_new(&c).await;
        let c2 = c.clone();
        let b2 = b.clone();
        let b_join = tokio::spawn(async move { c2.join(&join_request(&b2), 5, client()).await });
        tokio::task::yield_now().await;
        // `a` never rejoins: past the rebalance timeout the round goes on without it.
        c.expire(Instant::now() + Duration::from_secs(6));
        let joined = b_join.await.unwrap();
        assert_eq!((joined.generation_id, joined.members.len()), (2, 1));
        assert_eq!(joined.leader.as_str(), b);
    }

    #[tokio::test]
    async fn bad_joins_get_kafkas_errors() {
        let c = Coordinator::default();
        let short = join_request("").with_session_timeout_ms(100);
        assert_eq!(
            c.join(&short, 5, client()).await.error_code,
            ResponseError::InvalidSessionTimeout.code()
        );
        assert_eq!(
            c.join(&join_request("nobody"), 5, client())
                .await
                .error_code,
            ResponseError::UnknownMemberId.code()
        );
        // Version 3 and before get a member id at once.
        let old = c.join(&join_request(""), 3, client()).await;
        assert_eq!((old.error_code, old.generation_id), (0, 1));
        let other = join_request("").with_protocol_type(text("connect"));
        assert_eq!(
            c.join(&other, 3, client()).await.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
    }
}
