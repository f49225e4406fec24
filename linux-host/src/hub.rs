//! The stream table and the rules of who may do what: the host's `Endpoint`, beside the
//! connections (quinn-proto keeps routing in `Endpoint` and protocol in `Connection` the same
//! way). Connections ask the hub; the hub never touches a socket.

use std::net::IpAddr;

use crate::config::Cidr;
use crate::stream::Stream;
use crate::waiting::Waiting;

/// A stream of the [`Hub`]: its slot, and which of the streams that slot held over time. The
/// table reuses a released stream's slot; an id kept after that (by a relay still connecting,
/// the send schedule, a report) is then stale and finds nothing, never the slot's new stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    index: usize,
    generation: u64,
}

/// Why a request was refused; each is logged once with the peer's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The application is not the configured one.
    UnknownApp,
    /// The peer's address is not in `--allow-publish` / `--allow-play`, or is in `--deny-play`.
    Address,
    /// A key is required and none was given.
    MissingKey,
    /// A key was given and it is wrong.
    WrongKey,
    /// The name is the capture's own stream.
    CaptureStream,
    /// `--max-streams` streams exist already.
    TooManyStreams,
    /// The name is not a valid stream name.
    BadName,
    /// A player may not wait for one more unpublished name ([`crate::waiting`]).
    TooManyWaiting,
    /// The address gave too many wrong keys lately; its key is not looked at.
    LockedOut,
    /// The stream has its `max_listeners`.
    TooManyListeners,
    /// The address has its `max_listeners_per_addr`.
    TooManyListenersFromAddress,
    /// The `on_play` or `on_publish` hook refused, or did not answer in time.
    Hook,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownApp => "no such application",
            Self::Address => "address not allowed",
            Self::MissingKey => "no key given",
            Self::WrongKey => "wrong key",
            Self::CaptureStream => "the stream is the local capture's",
            Self::TooManyStreams => "too many streams (--max-streams)",
            Self::BadName => "invalid stream name",
            Self::TooManyWaiting => "no such stream, and too many names waited for",
            Self::LockedOut => "too many wrong keys from this address lately",
            Self::TooManyListeners => "max listeners reached (max_listeners)",
            Self::Hook => "refused by the hook",
            Self::TooManyListenersFromAddress => {
                "too many listeners from this address (max_listeners_per_addr)"
            }
        })
    }
}

/// Access rules, from `[access]` and the per-stream keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Access {
    /// The one application publishers and players use (`live`).
    pub app: String,
    /// Addresses that may publish.
    pub allow_publish: Vec<Cidr>,
    /// The key every publisher must present, unless its stream has its own.
    pub publish_key: Option<String>,
    /// Per-stream publish keys, by stream name.
    pub stream_keys: Vec<(String, String)>,
    /// Addresses that may play (empty: everybody).
    pub allow_play: Vec<Cidr>,
    /// Addresses that may not play.
    pub deny_play: Vec<Cidr>,
    /// The key players must present, if set.
    pub play_key: Option<String>,
}

/// A request as the peer sent it: the application and stream name may carry `?key=…`.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The peer's address.
    pub peer: IpAddr,
    /// `connect`'s app, query string included.
    pub app: &'a str,
    /// `play`/`publish`'s name, query string included.
    pub name: &'a str,
}

impl Request<'_> {
    /// The application without its query.
    pub fn app_base(&self) -> &str {
        split_query(self.app).0
    }

    /// The stream name without its query.
    pub fn name_base(&self) -> &str {
        split_query(self.name).0
    }

    /// The `key` parameter, from the name's query first (OBS's "stream key"), then the app's.
    fn key(&self) -> Option<&str> {
        query_key(split_query(self.name).1).or_else(|| query_key(split_query(self.app).1))
    }
}

/// `s` before and after its `?` (the query, empty without one).
pub(crate) fn split_query(s: &str) -> (&str, &str) {
    s.split_once('?').unwrap_or((s, ""))
}

fn query_key(query: &str) -> Option<&str> {
    query.split('&').find_map(|pair| pair.strip_prefix("key="))
}

impl Access {
    /// Whether the request may publish.
    pub fn may_publish(&self, request: &Request<'_>) -> Result<(), Denied> {
        self.check_name(request)?;
        if !self.allow_publish.iter().any(|c| c.contains(request.peer)) {
            return Err(Denied::Address);
        }
        check_key(request.key(), self.publish_key_of(request.name_base()))
    }

    /// The key publishers of `name` must present, if any.
    fn publish_key_of(&self, name: &str) -> Option<&str> {
        self.stream_keys
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.as_str())
            .or(self.publish_key.as_deref())
    }

    /// Whether publishing (or playing) what `request` names takes a key: only such requests
    /// are refused while the peer is locked out after wrong keys ([`crate::guesses`]).
    pub fn takes_key(&self, request: &Request<'_>, publish: bool) -> bool {
        if publish {
            self.publish_key_of(request.name_base()).is_some()
        } else {
            self.play_key.is_some()
        }
    }

    /// Whether the request may play.
    pub fn may_play(&self, request: &Request<'_>) -> Result<(), Denied> {
        self.may_play_keyless(request)?;
        check_key(request.key(), self.play_key.as_deref())
    }

    /// [`Access::may_play`] for a request whose key was checked otherwise (an HLS segment
    /// request with its playlist's token): the name and the address rules.
    pub fn may_play_keyless(&self, request: &Request<'_>) -> Result<(), Denied> {
        self.check_name(request)?;
        let allowed =
            self.allow_play.is_empty() || self.allow_play.iter().any(|c| c.contains(request.peer));
        if !allowed || self.deny_play.iter().any(|c| c.contains(request.peer)) {
            return Err(Denied::Address);
        }
        Ok(())
    }

    fn check_name(&self, request: &Request<'_>) -> Result<(), Denied> {
        if request.app_base() != self.app {
            return Err(Denied::UnknownApp);
        }
        if !crate::names::is_valid(request.name_base()) {
            return Err(Denied::BadName);
        }
        Ok(())
    }
}

fn check_key(given: Option<&str>, expected: Option<&str>) -> Result<(), Denied> {
    match (expected, given) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(Denied::MissingKey),
        (Some(expected), Some(given))
            if crate::constant_time::eq(given.as_bytes(), expected.as_bytes()) =>
        {
            Ok(())
        }
        (Some(_), Some(_)) => Err(Denied::WrongKey),
    }
}

/// Which streams are recorded, where, and how.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recording {
    /// The directory every stream is recorded in (`--record`), if any.
    pub all: Option<std::path::PathBuf>,
    /// Streams with their own directory (`[[stream]] record`), by name.
    pub streams: Vec<(String, std::path::PathBuf)>,
    /// Rotation and retention.
    pub settings: Option<crate::record::Settings>,
}

impl Recording {
    fn dir(&self, name: &str) -> Option<&std::path::Path> {
        self.streams
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_path())
            .or(self.all.as_deref())
    }
}

/// The fixed-capacity stream table, and the players waiting for a stream not in it yet.
pub struct Hub {
    streams: Vec<Option<Stream>>,
    /// Per slot, how many streams it has held: the generation of its current one.
    generations: Vec<u64>,
    /// Players of names nobody publishes yet: they take no slot of the table.
    pub waiting: Waiting,
    /// Applied to streams as they are created.
    pub recording: Recording,
    /// Streams get HTTP renditions (the server listens for HTTP).
    http: bool,
    /// The recordings' disk thread, started with the first recorder. Declared after `streams`:
    /// dropped after their recorders, it waits (at exit only) for their last blocks.
    disk: Option<crate::record::Disk>,
}

impl Hub {
    /// A table of at most `max_streams` streams.
    pub fn new(max_streams: usize) -> Self {
        let mut streams = Vec::with_capacity(max_streams);
        streams.resize_with(max_streams, || None);
        Self {
            streams,
            generations: vec![0; max_streams],
            waiting: Waiting::default(),
            recording: Recording::default(),
            http: false,
            disk: None,
        }
    }

    /// Every stream, now and later, gets HTTP renditions.
    pub fn enable_http(&mut self) {
        self.http = true;
        for (_, s) in self.iter_mut() {
            s.enable_http();
        }
    }

    /// The stream `app/name`, if it exists.
    pub fn find(&self, app: &str, name: &str) -> Option<StreamId> {
        self.streams
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.is(app, name)))
            .map(|i| self.id(i))
    }

    /// The id of the stream in slot `index` now.
    fn id(&self, index: usize) -> StreamId {
        StreamId {
            index,
            generation: self.generations.get(index).copied().unwrap_or(0),
        }
    }

    /// The slot of `id`, if `id` is its current stream's.
    fn slot(&self, id: StreamId) -> Option<usize> {
        (self.generations.get(id.index) == Some(&id.generation)).then_some(id.index)
    }

    /// The stream `app/name`, created if it does not exist and a slot is free: for publishers
    /// and the capture only (a player of a name not in the table waits in [`Hub::waiting`]).
    pub fn find_or_create(&mut self, app: &str, name: &str) -> Result<StreamId, Denied> {
        if let Some(id) = self.find(app, name) {
            return Ok(id);
        }
        let free = self
            .streams
            .iter()
            .position(Option::is_none)
            .ok_or(Denied::TooManyStreams)?;
        let mut stream = Stream::new(app, name);
        if let (Some(dir), Some(settings)) = (self.recording.dir(name), self.recording.settings) {
            // A recording that cannot start is logged; the stream is served all the same.
            let disk = match &mut self.disk {
                Some(disk) => Ok(disk),
                None => crate::record::Disk::start().map(|d| self.disk.insert(d)),
            };
            match disk.and_then(|disk| disk.recorder(dir, name, settings)) {
                Ok(recorder) => stream.record(recorder),
                Err(e) => log::error!("{app}/{name}: not recording in {}: {e}", dir.display()),
            }
        }
        if self.http {
            stream.enable_http();
        }
        self.streams[free] = Some(stream);
        self.generations[free] += 1;
        Ok(self.id(free))
    }

    /// The stream `id`.
    pub fn get(&self, id: StreamId) -> Option<&Stream> {
        self.streams.get(self.slot(id)?).and_then(Option::as_ref)
    }

    /// The stream `id`, mutably.
    pub fn get_mut(&mut self, id: StreamId) -> Option<&mut Stream> {
        let index = self.slot(id)?;
        self.streams.get_mut(index).and_then(Option::as_mut)
    }

    /// Frees `id` if nobody publishes or listens.
    pub fn release_if_idle(&mut self, id: StreamId) {
        let slot = self.slot(id).and_then(|i| self.streams.get_mut(i));
        if let Some(slot) = slot {
            if slot.as_ref().is_some_and(Stream::is_idle) {
                *slot = None;
            }
        }
    }

    /// Every stream with its id.
    pub fn iter(&self) -> impl Iterator<Item = (StreamId, &Stream)> {
        self.streams
            .iter()
            .zip(&self.generations)
            .enumerate()
            .filter_map(|(index, (s, &generation))| {
                s.as_ref().map(|s| (StreamId { index, generation }, s))
            })
    }

    /// Every stream with its id, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (StreamId, &mut Stream)> {
        self.streams
            .iter_mut()
            .zip(&self.generations)
            .enumerate()
            .filter_map(|(index, (s, &generation))| {
                s.as_mut().map(|s| (StreamId { index, generation }, s))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access {
            app: "live".into(),
            allow_publish: vec![Cidr::parse("127.0.0.0/8").unwrap()],
            publish_key: Some("s3cret".into()),
            stream_keys: vec![("radio".into(), "other".into())],
            allow_play: vec![],
            deny_play: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            play_key: None,
        }
    }

    fn req<'a>(peer: &str, app: &'a str, name: &'a str) -> Request<'a> {
        Request {
            peer: peer.parse().unwrap(),
            app,
            name,
        }
    }

    #[test]
    fn publish_needs_address_and_key() {
        let a = access();
        assert_eq!(
            a.may_publish(&req("127.0.0.1", "live", "x?key=s3cret")),
            Ok(())
        );
        assert_eq!(
            a.may_publish(&req("127.0.0.1", "live?key=s3cret", "x")),
            Ok(())
        );
        assert_eq!(
            a.may_publish(&req("127.0.0.1", "live", "x")),
            Err(Denied::MissingKey)
        );
        assert_eq!(
            a.may_publish(&req("127.0.0.1", "live", "x?key=s3cre")),
            Err(Denied::WrongKey)
        );
        assert_eq!(
            a.may_publish(&req("192.168.1.2", "live", "x?key=s3cret")),
            Err(Denied::Address)
        );
        assert_eq!(
            a.may_publish(&req("127.0.0.1", "live", "radio?key=s3cret")),
            Err(Denied::WrongKey),
            "a stream's own key replaces the global one"
        );
        assert_eq!(
            a.may_publish(&req("127.0.0.1", "live", "radio?key=other")),
            Ok(())
        );
        assert_eq!(
            a.may_publish(&req("127.0.0.1", "vod", "x?key=s3cret")),
            Err(Denied::UnknownApp)
        );
        assert_eq!(
            a.may_publish(&req("127.0.0.1", "live", "a/b?key=s3cret")),
            Err(Denied::BadName)
        );
    }

    #[test]
    fn play_rules() {
        let mut a = access();
        assert_eq!(a.may_play(&req("192.168.1.2", "live", "x")), Ok(()));
        assert_eq!(
            a.may_play(&req("10.1.2.3", "live", "x")),
            Err(Denied::Address)
        );
        a.play_key = Some("k".into());
        assert_eq!(
            a.may_play(&req("192.168.1.2", "live", "x")),
            Err(Denied::MissingKey)
        );
        assert_eq!(a.may_play(&req("192.168.1.2", "live", "x?key=k")), Ok(()));
    }

    #[test]
    fn table_is_bounded_and_frees_idle_streams() {
        let mut hub = Hub::new(2);
        let a = hub.find_or_create("live", "a").unwrap();
        let b = hub.find_or_create("live", "b").unwrap();
        assert_eq!(hub.find_or_create("live", "a"), Ok(a));
        assert_eq!(hub.find_or_create("live", "c"), Err(Denied::TooManyStreams));
        hub.release_if_idle(b);
        assert!(hub.get(b).is_none());
        assert!(hub.find_or_create("live", "c").is_ok());
    }

    /// An id kept after its stream was released reaches nothing, not the stream that took the
    /// slot over (a relay or a send schedule entry of the old stream would feed or read it).
    #[test]
    fn a_stale_id_does_not_reach_the_slots_next_stream() {
        let mut hub = Hub::new(1);
        let old = hub.find_or_create("live", "old").unwrap();
        hub.release_if_idle(old);
        let new = hub.find_or_create("live", "new").unwrap();
        assert_ne!(old, new, "same slot, another stream");
        assert!(hub.get(old).is_none());
        assert!(hub.get_mut(old).is_none());
        // Releasing through the stale id leaves the new stream alone.
        hub.release_if_idle(old);
        assert_eq!(hub.get(new).map(Stream::name), Some("new"));
        assert_eq!(hub.find("live", "new"), Some(new));
        assert_eq!(hub.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![new]);
        assert_eq!(
            hub.iter_mut().map(|(id, _)| id).collect::<Vec<_>>(),
            vec![new]
        );
    }
}
