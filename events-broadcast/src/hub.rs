//! This process's sockets: which channels each app's connections are
//! subscribed to, delivery to them, and (without Redis) the presence
//! members.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use crate::App;
use crate::protocol::{Member, ServerMessage, codes};

/// Something to deliver to the sockets of one app, wherever they are: this
/// is what travels between nodes through Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Delivery {
    /// An event on some channels.
    Event {
        app: String,
        channels: Vec<String>,
        event: String,
        /// JSON text, sent as the frame's `data` string.
        data: String,
        /// A socket that does not get it (the sender's, for `to_others`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        /// On a client event in a presence channel, the sender's user id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// A user's first connection joined a presence channel.
    MemberAdded {
        app: String,
        channel: String,
        member: Member,
        /// The socket that joined: it learns the members from its
        /// subscription_succeeded.
        except: String,
        /// When the change happened (0: no order to keep, one process).
        #[serde(default)]
        version: u64,
    },
    /// A user's last connection left a presence channel.
    MemberRemoved {
        app: String,
        channel: String,
        user_id: String,
        /// When the change happened (0: no order to keep, one process).
        #[serde(default)]
        version: u64,
    },
}

/// A way to close one connection from outside its task: the hub kicks a
/// socket whose outbox is full (it cannot keep up).
#[derive(Debug, Default)]
pub(crate) struct Kick {
    code: AtomicU16,
    notify: Notify,
}

impl Kick {
    pub(crate) fn kick(&self, code: u16) {
        self.code.store(code, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) async fn kicked(&self) -> u16 {
        self.notify.notified().await;
        self.code.load(Ordering::Acquire)
    }
}

/// A frame on its way to one socket. A presence change carries its
/// channel and version: the socket's task drops it when the members it
/// was sent already include it (a change that crossed Redis more slowly
/// than the socket's own join).
#[derive(Debug, Clone)]
pub(crate) struct Out {
    pub(crate) frame: Utf8Bytes,
    pub(crate) change: Option<(Arc<str>, u64)>,
}

/// One subscribed socket, as the hub delivers to it.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) tx: mpsc::Sender<Out>,
    pub(crate) kick: Arc<Kick>,
}

impl Conn {
    fn send(&self, out: &Out) {
        match self.tx.try_send(out.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.kick.kick(codes::OVER_CAPACITY),
            // The connection is going away: nothing to do.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A presence member in this process's store: their info and the sockets
/// they are connected with.
#[derive(Debug, Clone)]
struct LocalMember {
    info: Option<serde_json::Value>,
    sockets: BTreeSet<String>,
}

/// A socket on a channel: where to deliver, and the version of the
/// presence members it was sent when it joined (member events no newer
/// than that are already in what it knows; 0 elsewhere).
#[derive(Debug, Clone)]
struct Sub {
    conn: Conn,
    since: u64,
}

/// One app's channels in this process.
#[derive(Debug)]
pub(crate) struct AppHub {
    pub(crate) app: App,
    channels: RwLock<HashMap<String, HashMap<String, Sub>>>,
    presence: Mutex<HashMap<String, BTreeMap<String, LocalMember>>>,
}

/// Every app's channels in this process.
#[derive(Debug)]
pub(crate) struct Hub {
    by_id: HashMap<String, Arc<AppHub>>,
    by_key: HashMap<String, Arc<AppHub>>,
}

impl Hub {
    pub(crate) fn new(apps: &[App]) -> Hub {
        let mut by_id = HashMap::new();
        let mut by_key = HashMap::new();
        for app in apps {
            let hub = Arc::new(AppHub {
                app: app.clone(),
                channels: RwLock::default(),
                presence: Mutex::default(),
            });
            by_id.insert(app.id().to_owned(), hub.clone());
            by_key.insert(app.key().to_owned(), hub);
        }
        Hub { by_id, by_key }
    }

    /// Every app's hub.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn apps(&self) -> impl Iterator<Item = &Arc<AppHub>> {
        self.by_id.values()
    }

    pub(crate) fn by_id(&self, id: &str) -> Option<&Arc<AppHub>> {
        self.by_id.get(id)
    }

    pub(crate) fn by_key(&self, key: &str) -> Option<&Arc<AppHub>> {
        self.by_key.get(key)
    }

    /// Closes with `code` every socket of this process on a presence
    /// channel (their clients reconnect and join again).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn kick_presence(&self, code: u16) {
        for hub in self.by_id.values() {
            for (channel, sockets) in read(&hub.channels).iter() {
                if channel.starts_with("presence-") {
                    for sub in sockets.values() {
                        sub.conn.kick.kick(code);
                    }
                }
            }
        }
    }

    /// Delivers to this process's sockets.
    pub(crate) fn deliver(&self, delivery: &Delivery) {
        match delivery {
            Delivery::Event {
                app,
                channels,
                event,
                data,
                except,
                user_id,
            } => {
                let Some(hub) = self.by_id(app) else { return };
                for channel in channels {
                    let frame = ServerMessage::Event {
                        event,
                        channel,
                        data,
                        user_id: user_id.as_deref(),
                    }
                    .to_json();
                    hub.send(channel, frame, except.as_deref(), 0);
                }
            }
            Delivery::MemberAdded {
                app,
                channel,
                member,
                except,
                version,
            } => {
                if let Some(hub) = self.by_id(app) {
                    let frame = ServerMessage::MemberAdded { channel, member }.to_json();
                    hub.send(channel, frame, Some(except), *version);
                }
            }
            Delivery::MemberRemoved {
                app,
                channel,
                user_id,
                version,
            } => {
                if let Some(hub) = self.by_id(app) {
                    let frame = ServerMessage::MemberRemoved { channel, user_id }.to_json();
                    hub.send(channel, frame, None, *version);
                }
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppHub {
    /// Sends `frame` to every socket on `channel` but `except`, and (for a
    /// presence change of `version`) but those whose members already
    /// include it.
    fn send(&self, channel: &str, frame: String, except: Option<&str>, version: u64) {
        let out = Out {
            frame: Utf8Bytes::from(frame),
            change: (version != 0).then(|| (Arc::from(channel), version)),
        };
        let channels = read(&self.channels);
        let Some(sockets) = channels.get(channel) else {
            return;
        };
        for (socket_id, sub) in sockets {
            let known = version != 0 && version <= sub.since;
            if except != Some(socket_id.as_str()) && !known {
                sub.conn.send(&out);
            }
        }
    }

    /// Puts `socket_id` on `channel`; `since` is the version of the
    /// presence members it was sent (0 on other channels).
    pub(crate) fn subscribe(&self, channel: &str, socket_id: &str, conn: Conn, since: u64) {
        write(&self.channels)
            .entry(channel.to_owned())
            .or_default()
            .insert(socket_id.to_owned(), Sub { conn, since });
    }

    /// Sets the version of the presence members `socket_id` was sent on
    /// `channel`.
    pub(crate) fn set_since(&self, channel: &str, socket_id: &str, since: u64) {
        if let Some(sub) = write(&self.channels)
            .get_mut(channel)
            .and_then(|sockets| sockets.get_mut(socket_id))
        {
            sub.since = since;
        }
    }

    pub(crate) fn unsubscribe(&self, channel: &str, socket_id: &str) {
        let mut channels = write(&self.channels);
        if let Some(sockets) = channels.get_mut(channel) {
            sockets.remove(socket_id);
            if sockets.is_empty() {
                channels.remove(channel);
            }
        }
    }

    /// The channels with a socket in this process, and how many.
    pub(crate) fn occupied(&self) -> BTreeMap<String, usize> {
        read(&self.channels)
            .iter()
            .map(|(name, sockets)| (name.clone(), sockets.len()))
            .collect()
    }

    /// Adds `socket_id` as `member` to `channel`: whether it is the
    /// user's first connection there, and every member after it.
    pub(crate) fn presence_join(
        &self,
        channel: &str,
        socket_id: &str,
        member: &Member,
    ) -> (bool, Vec<Member>) {
        let mut presence = lock(&self.presence);
        let members = presence.entry(channel.to_owned()).or_default();
        let first = !members.contains_key(&member.user_id);
        members
            .entry(member.user_id.clone())
            .or_insert_with(|| LocalMember {
                info: member.user_info.clone(),
                sockets: BTreeSet::new(),
            })
            .sockets
            .insert(socket_id.to_owned());
        (first, list(members))
    }

    /// Takes `socket_id` off `channel`: the user id when it was the user's
    /// last connection there.
    pub(crate) fn presence_leave(&self, channel: &str, socket_id: &str) -> Option<String> {
        let mut presence = lock(&self.presence);
        let members = presence.get_mut(channel)?;
        let user_id = members
            .iter()
            .find(|(_, m)| m.sockets.contains(socket_id))
            .map(|(id, _)| id.clone())?;
        let gone = members.get_mut(&user_id).is_some_and(|member| {
            member.sockets.remove(socket_id);
            member.sockets.is_empty()
        });
        if gone {
            members.remove(&user_id);
        }
        if members.is_empty() {
            presence.remove(channel);
        }
        gone.then_some(user_id)
    }

    /// The members of `channel`, one per user.
    pub(crate) fn presence_members(&self, channel: &str) -> Vec<Member> {
        lock(&self.presence)
            .get(channel)
            .map(list)
            .unwrap_or_default()
    }
}

fn list(members: &BTreeMap<String, LocalMember>) -> Vec<Member> {
    members
        .iter()
        .map(|(id, m)| Member {
            user_id: id.clone(),
            user_info: m.info.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(&[App::new("1", "k", "s")])
    }

    fn conn(capacity: usize) -> (Conn, mpsc::Receiver<Out>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Conn {
                tx,
                kick: Arc::default(),
            },
            rx,
        )
    }

    #[test]
    fn delivers_to_subscribers_but_the_excepted() {
        let hub = hub();
        let app = hub.by_id("1").expect("the app").clone();
        let (a, mut a_rx) = conn(4);
        let (b, mut b_rx) = conn(4);
        app.subscribe("chat", "1.1", a, 0);
        app.subscribe("chat", "2.2", b, 0);
        hub.deliver(&Delivery::Event {
            app: "1".into(),
            channels: vec!["chat".into(), "elsewhere".into()],
            event: "said".into(),
            data: "{}".into(),
            except: Some("2.2".into()),
            user_id: None,
        });
        let frame = a_rx.try_recv().expect("a gets it");
        assert_eq!(
            frame.frame.as_str(),
            r#"{"event":"said","channel":"chat","data":"{}"}"#
        );
        assert!(b_rx.try_recv().is_err(), "b sent it");
        // Another app's id reaches nobody.
        hub.deliver(&Delivery::Event {
            app: "2".into(),
            channels: vec!["chat".into()],
            event: "said".into(),
            data: "{}".into(),
            except: None,
            user_id: None,
        });
        assert!(a_rx.try_recv().is_err());
        app.unsubscribe("chat", "1.1");
        app.unsubscribe("chat", "2.2");
        assert!(app.occupied().is_empty());
    }

    #[test]
    fn a_full_outbox_kicks_the_socket() {
        let hub = hub();
        let app = hub.by_id("1").expect("the app").clone();
        let (a, _rx) = conn(1);
        let kick = a.kick.clone();
        app.subscribe("chat", "1.1", a, 0);
        for _ in 0..2 {
            hub.deliver(&Delivery::MemberRemoved {
                app: "1".into(),
                channel: "chat".into(),
                user_id: "7".into(),
                version: 0,
            });
        }
        assert_eq!(kick.code.load(Ordering::Acquire), codes::OVER_CAPACITY);
    }

    #[test]
    fn member_events_already_in_a_socket_s_members_are_not_sent_again() {
        let hub = hub();
        let app = hub.by_id("1").expect("the app").clone();
        let (early, mut early_rx) = conn(4);
        let (late, mut late_rx) = conn(4);
        app.subscribe("presence-a", "1.1", early, 10);
        app.subscribe("presence-a", "2.2", late, 20);
        let added = |version| Delivery::MemberAdded {
            app: "1".into(),
            channel: "presence-a".into(),
            member: Member::new("7"),
            except: "3.3".into(),
            version,
        };
        // Joined at 15: the early socket's members lack it, the late one's
        // have it.
        hub.deliver(&added(15));
        assert!(early_rx.try_recv().is_ok());
        assert!(late_rx.try_recv().is_err());
        hub.deliver(&added(21));
        assert!(early_rx.try_recv().is_ok());
        assert!(late_rx.try_recv().is_ok());
    }

    #[test]
    fn presence_counts_users_not_sockets() {
        let hub = hub();
        let app = hub.by_id("1").expect("the app");
        let ann = Member::new("7");
        let bob = Member::new("9");
        assert!(app.presence_join("presence-a", "1.1", &ann).0);
        assert!(!app.presence_join("presence-a", "1.2", &ann).0);
        let (first, members) = app.presence_join("presence-a", "2.1", &bob);
        assert!(first);
        assert_eq!(members.len(), 2);
        assert_eq!(app.presence_leave("presence-a", "1.1"), None);
        assert_eq!(
            app.presence_leave("presence-a", "1.2").as_deref(),
            Some("7")
        );
        assert_eq!(app.presence_members("presence-a"), vec![bob]);
        assert_eq!(app.presence_leave("presence-a", "1.2"), None);
        assert_eq!(
            app.presence_leave("presence-a", "2.1").as_deref(),
            Some("9")
        );
        assert!(app.presence_members("presence-a").is_empty());
    }
}
