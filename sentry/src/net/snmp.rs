//! The protocol counters of one network (`/proc/net/snmp`, `/proc/net/snmp6`,
//! `/proc/net/netstat`, which `netstat -s`, `nstat` and `ss -s` read), in Linux's
//! formats and with its field names (those of Linux 6.18; the fields of a line are
//! the kernel's, in its order). Counters the sandbox's stacks do not keep are 0.
//!
//! What is counted: TCP opens (active: a connect sent its SYN; passive: a
//! listener's handshake completed), failed attempts, resets of established
//! connections, segments and resets sent and received; UDP and UDP-Lite datagrams
//! sent, delivered, to ports nobody holds, and dropped for a full receive buffer;
//! ICMP messages by type; IP datagrams sent, received and delivered. Over loopback,
//! where connections carry no packets (net/tcp.rs), the segments counted are those
//! the exchange stands for: three for a handshake, one per data chunk of at most
//! the loopback MSS and an ACK for each send, a FIN and its ACK, a reset; each counts as
//! sent and received, and as an IP datagram both ways, as on Linux's `lo`. On the
//! pod's interface every frame the device carries is counted by what it holds.
//! `CurrEstab` is the number of connections in ESTABLISHED or CLOSE-WAIT when the
//! file is read.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::net::addr::Family;

/// IP counters of one family.
#[derive(Default)]
pub struct IpMib {
    /// Datagrams received (`InReceives`).
    pub in_receives: AtomicU64,
    /// Datagrams handed to a transport (`InDelivers`).
    pub in_delivers: AtomicU64,
    /// Datagrams sent (`OutRequests`, `OutTransmits`).
    pub out_requests: AtomicU64,
    /// Datagrams no route took (`OutNoRoutes`).
    pub out_no_routes: AtomicU64,
}

/// ICMP messages of one family by type, received and sent.
pub struct IcmpMib {
    /// By type, received.
    pub input: [AtomicU64; 256],
    /// By type, sent.
    pub output: [AtomicU64; 256],
}

impl Default for IcmpMib {
    fn default() -> Self {
        IcmpMib {
            input: std::array::from_fn(|_| AtomicU64::new(0)),
            output: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// TCP counters (both families, as Linux keeps them).
#[derive(Default)]
pub struct TcpMib {
    /// Connects that sent a SYN.
    pub active_opens: AtomicU64,
    /// Connections a listener completed.
    pub passive_opens: AtomicU64,
    /// Connects refused or timed out.
    pub attempt_fails: AtomicU64,
    /// Established (or CLOSE-WAIT) connections reset.
    pub estab_resets: AtomicU64,
    /// Segments received.
    pub in_segs: AtomicU64,
    /// Segments sent (retransmissions not included).
    pub out_segs: AtomicU64,
    /// Segments sent again.
    pub retrans_segs: AtomicU64,
    /// Resets sent.
    pub out_rsts: AtomicU64,
}

/// UDP (or UDP-Lite) counters of one family.
#[derive(Default)]
pub struct UdpMib {
    /// Datagrams delivered to a socket.
    pub in_datagrams: AtomicU64,
    /// Datagrams to a port nobody holds.
    pub no_ports: AtomicU64,
    /// Datagrams received but not delivered (`RcvbufErrors` among them).
    pub in_errors: AtomicU64,
    /// Datagrams sent.
    pub out_datagrams: AtomicU64,
    /// Datagrams dropped for a full receive buffer.
    pub rcvbuf_errors: AtomicU64,
}

/// The counters of one network.
#[derive(Default)]
pub struct Snmp {
    /// IPv4, IPv6.
    pub ip: [IpMib; 2],
    /// ICMP, ICMPv6.
    pub icmp: [IcmpMib; 2],
    /// TCP.
    pub tcp: TcpMib,
    /// UDP over IPv4, IPv6.
    pub udp: [UdpMib; 2],
    /// UDP-Lite over IPv4, IPv6.
    pub udplite: [UdpMib; 2],
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    add(c, 1);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The index of a family's counters.
pub fn fam(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// The index of an address's family's counters (a v4-mapped or IPv4 address
/// counts as IPv4, as Linux counts the packet).
pub fn fam_of(ip: std::net::IpAddr) -> usize {
    match crate::net::addr::canonical(ip) {
        std::net::IpAddr::V4(_) => 0,
        std::net::IpAddr::V6(_) => 1,
    }
}

impl Snmp {
    /// A datagram of family `f` carried over loopback: sent, received and
    /// delivered.
    pub fn looped(&self, f: usize) {
        let ip = &self.ip[f];
        inc(&ip.out_requests);
        inc(&ip.in_receives);
        inc(&ip.in_delivers);
    }

    /// `n` TCP segments over loopback (sent and received).
    pub fn tcp_looped(&self, f: usize, n: u64) {
        add(&self.tcp.out_segs, n);
        add(&self.tcp.in_segs, n);
        for _ in 0..n.min(4) {
            self.looped(f);
        }
        if n > 4 {
            let ip = &self.ip[f];
            add(&ip.out_requests, n - 4);
            add(&ip.in_receives, n - 4);
            add(&ip.in_delivers, n - 4);
        }
    }

    /// A frame the pod's interface received (`out`: sent) holding `frame`
    /// (Ethernet): counted by its IP family and transport (`segs` segments for a
    /// TCP aggregate).
    pub fn frame(&self, frame: &[u8], out: bool, segs: u64) {
        let (f, proto, l4) = match frame.get(12..14) {
            Some([0x08, 0x00]) => {
                let ihl = frame.get(14).map_or(20, |v| (*v as usize & 0xf) * 4);
                (0, frame.get(23).copied(), frame.get(14 + ihl..))
            }
            Some([0x86, 0xdd]) => (1, frame.get(20).copied(), frame.get(54..)),
            _ => return,
        };
        let ip = &self.ip[f];
        if out {
            add(&ip.out_requests, segs);
        } else {
            add(&ip.in_receives, segs);
            add(&ip.in_delivers, segs);
        }
        match proto {
            Some(6) => {
                if out {
                    add(&self.tcp.out_segs, segs);
                } else {
                    add(&self.tcp.in_segs, segs);
                }
                if l4.and_then(|t| t.get(13)).is_some_and(|fl| fl & 0x4 != 0) && out {
                    inc(&self.tcp.out_rsts);
                }
            }
            Some(1) | Some(58) => {
                let want = if f == 0 { 1 } else { 58 };
                if proto == Some(want) {
                    if let Some(&t) = l4.and_then(|m| m.first()) {
                        self.icmp_msg(f, t, out);
                    }
                }
            }
            _ => {}
        }
    }

    /// An ICMP message of type `ty` of family `f`, received or sent (`out`).
    pub fn icmp_msg(&self, f: usize, ty: u8, out: bool) {
        let m = &self.icmp[f];
        if out {
            inc(&m.output[ty as usize]);
        } else {
            inc(&m.input[ty as usize]);
        }
    }
}

const IP_FIELDS: &[&str] = &[
    "Forwarding",
    "DefaultTTL",
    "InReceives",
    "InHdrErrors",
    "InAddrErrors",
    "ForwDatagrams",
    "InUnknownProtos",
    "InDiscards",
    "InDelivers",
    "OutRequests",
    "OutDiscards",
    "OutNoRoutes",
    "ReasmTimeout",
    "ReasmReqds",
    "ReasmOKs",
    "ReasmFails",
    "FragOKs",
    "FragFails",
    "FragCreates",
    "OutTransmits",
];
const ICMP_FIELDS: &[&str] = &[
    "InMsgs",
    "InErrors",
    "InCsumErrors",
    "InDestUnreachs",
    "InTimeExcds",
    "InParmProbs",
    "InSrcQuenchs",
    "InRedirects",
    "InEchos",
    "InEchoReps",
    "InTimestamps",
    "InTimestampReps",
    "InAddrMasks",
    "InAddrMaskReps",
    "OutMsgs",
    "OutErrors",
    "OutRateLimitGlobal",
    "OutRateLimitHost",
    "OutDestUnreachs",
    "OutTimeExcds",
    "OutParmProbs",
    "OutSrcQuenchs",
    "OutRedirects",
    "OutEchos",
    "OutEchoReps",
    "OutTimestamps",
    "OutTimestampReps",
    "OutAddrMasks",
    "OutAddrMaskReps",
];
const TCP_FIELDS: &[&str] = &[
    "RtoAlgorithm",
    "RtoMin",
    "RtoMax",
    "MaxConn",
    "ActiveOpens",
    "PassiveOpens",
    "AttemptFails",
    "EstabResets",
    "CurrEstab",
    "InSegs",
    "OutSegs",
    "RetransSegs",
    "InErrs",
    "OutRsts",
    "InCsumErrors",
];
const UDP_FIELDS: &[&str] = &[
    "InDatagrams",
    "NoPorts",
    "InErrors",
    "OutDatagrams",
    "RcvbufErrors",
    "SndbufErrors",
    "InCsumErrors",
    "IgnoredMulti",
    "MemErrors",
];
const IP6_FIELDS: &[&str] = &[
    "InReceives",
    "InHdrErrors",
    "InTooBigErrors",
    "InNoRoutes",
    "InAddrErrors",
    "InUnknownProtos",
    "InTruncatedPkts",
    "InDiscards",
    "InDelivers",
    "OutForwDatagrams",
    "OutRequests",
    "OutDiscards",
    "OutNoRoutes",
    "ReasmTimeout",
    "ReasmReqds",
    "ReasmOKs",
    "ReasmFails",
    "FragOKs",
    "FragFails",
    "FragCreates",
    "InMcastPkts",
    "OutMcastPkts",
    "InOctets",
    "OutOctets",
    "InMcastOctets",
    "OutMcastOctets",
    "InBcastOctets",
    "OutBcastOctets",
    "InNoECTPkts",
    "InECT1Pkts",
    "InECT0Pkts",
    "InCEPkts",
    "OutTransmits",
];
const ICMP6_FIELDS: &[&str] = &[
    "InMsgs",
    "InErrors",
    "OutMsgs",
    "OutErrors",
    "InCsumErrors",
    "OutRateLimitHost",
    "InDestUnreachs",
    "InPktTooBigs",
    "InTimeExcds",
    "InParmProblems",
    "InEchos",
    "InEchoReplies",
    "InGroupMembQueries",
    "InGroupMembResponses",
    "InGroupMembReductions",
    "InRouterSolicits",
    "InRouterAdvertisements",
    "InNeighborSolicits",
    "InNeighborAdvertisements",
    "InRedirects",
    "InMLDv2Reports",
    "OutDestUnreachs",
    "OutPktTooBigs",
    "OutTimeExcds",
    "OutParmProblems",
    "OutEchos",
    "OutEchoReplies",
    "OutGroupMembQueries",
    "OutGroupMembResponses",
    "OutGroupMembReductions",
    "OutRouterSolicits",
    "OutRouterAdvertisements",
    "OutNeighborSolicits",
    "OutNeighborAdvertisements",
    "OutRedirects",
    "OutMLDv2Reports",
];
const UDP6_FIELDS: &[&str] = &[
    "InDatagrams",
    "NoPorts",
    "InErrors",
    "OutDatagrams",
    "RcvbufErrors",
    "SndbufErrors",
    "InCsumErrors",
    "IgnoredMulti",
    "MemErrors",
];
const UDPLITE6_FIELDS: &[&str] = &[
    "InDatagrams",
    "NoPorts",
    "InErrors",
    "OutDatagrams",
    "RcvbufErrors",
    "SndbufErrors",
    "InCsumErrors",
    "MemErrors",
];
const TCPEXT_FIELDS: &[&str] = &[
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
    "EmbryonicRsts",
    "PruneCalled",
    "RcvPruned",
    "OfoPruned",
    "OutOfWindowIcmps",
    "LockDroppedIcmps",
    "ArpFilter",
    "TW",
    "TWRecycled",
    "TWKilled",
    "PAWSActive",
    "PAWSEstab",
    "BeyondWindow",
    "TSEcrRejected",
    "PAWSOldAck",
    "PAWSTimewait",
    "DelayedACKs",
    "DelayedACKLocked",
    "DelayedACKLost",
    "ListenOverflows",
    "ListenDrops",
    "TCPHPHits",
    "TCPPureAcks",
    "TCPHPAcks",
    "TCPRenoRecovery",
    "TCPSackRecovery",
    "TCPSACKReneging",
    "TCPSACKReorder",
    "TCPRenoReorder",
    "TCPTSReorder",
    "TCPFullUndo",
    "TCPPartialUndo",
    "TCPDSACKUndo",
    "TCPLossUndo",
    "TCPLostRetransmit",
    "TCPRenoFailures",
    "TCPSackFailures",
    "TCPLossFailures",
    "TCPFastRetrans",
    "TCPSlowStartRetrans",
    "TCPTimeouts",
    "TCPLossProbes",
    "TCPLossProbeRecovery",
    "TCPRenoRecoveryFail",
    "TCPSackRecoveryFail",
    "TCPRcvCollapsed",
    "TCPBacklogCoalesce",
    "TCPDSACKOldSent",
    "TCPDSACKOfoSent",
    "TCPDSACKRecv",
    "TCPDSACKOfoRecv",
    "TCPAbortOnData",
    "TCPAbortOnClose",
    "TCPAbortOnMemory",
    "TCPAbortOnTimeout",
    "TCPAbortOnLinger",
    "TCPAbortFailed",
    "TCPMemoryPressures",
    "TCPMemoryPressuresChrono",
    "TCPSACKDiscard",
    "TCPDSACKIgnoredOld",
    "TCPDSACKIgnoredNoUndo",
    "TCPSpuriousRTOs",
    "TCPMD5NotFound",
    "TCPMD5Unexpected",
    "TCPMD5Failure",
    "TCPSackShifted",
    "TCPSackMerged",
    "TCPSackShiftFallback",
    "TCPBacklogDrop",
    "PFMemallocDrop",
    "TCPMinTTLDrop",
    "TCPDeferAcceptDrop",
    "IPReversePathFilter",
    "TCPTimeWaitOverflow",
    "TCPReqQFullDoCookies",
    "TCPReqQFullDrop",
    "TCPRetransFail",
    "TCPRcvCoalesce",
    "TCPOFOQueue",
    "TCPOFODrop",
    "TCPOFOMerge",
    "TCPChallengeACK",
    "TCPSYNChallenge",
    "TCPFastOpenActive",
    "TCPFastOpenActiveFail",
    "TCPFastOpenPassive",
    "TCPFastOpenPassiveFail",
    "TCPFastOpenListenOverflow",
    "TCPFastOpenCookieReqd",
    "TCPFastOpenBlackhole",
    "TCPSpuriousRtxHostQueues",
    "BusyPollRxPackets",
    "TCPAutoCorking",
    "TCPFromZeroWindowAdv",
    "TCPToZeroWindowAdv",
    "TCPWantZeroWindowAdv",
    "TCPSynRetrans",
    "TCPOrigDataSent",
    "TCPHystartTrainDetect",
    "TCPHystartTrainCwnd",
    "TCPHystartDelayDetect",
    "TCPHystartDelayCwnd",
    "TCPACKSkippedSynRecv",
    "TCPACKSkippedPAWS",
    "TCPACKSkippedSeq",
    "TCPACKSkippedFinWait2",
    "TCPACKSkippedTimeWait",
    "TCPACKSkippedChallenge",
    "TCPWinProbe",
    "TCPKeepAlive",
    "TCPMTUPFail",
    "TCPMTUPSuccess",
    "TCPDelivered",
    "TCPDeliveredCE",
    "TCPAckCompressed",
    "TCPZeroWindowDrop",
    "TCPRcvQDrop",
    "TCPWqueueTooBig",
    "TCPFastOpenPassiveAltKey",
    "TcpTimeoutRehash",
    "TcpDuplicateDataRehash",
    "TCPDSACKRecvSegs",
    "TCPDSACKIgnoredDubious",
    "TCPMigrateReqSuccess",
    "TCPMigrateReqFailure",
    "TCPPLBRehash",
    "TCPAORequired",
    "TCPAOBad",
    "TCPAOKeyNotFound",
    "TCPAOGood",
    "TCPAODroppedIcmps",
];
const IPEXT_FIELDS: &[&str] = &[
    "InNoRoutes",
    "InTruncatedPkts",
    "InMcastPkts",
    "OutMcastPkts",
    "InBcastPkts",
    "OutBcastPkts",
    "InOctets",
    "OutOctets",
    "InMcastOctets",
    "OutMcastOctets",
    "InBcastOctets",
    "OutBcastOctets",
    "InCsumErrors",
    "InNoECTPkts",
    "InECT1Pkts",
    "InECT0Pkts",
    "InCEPkts",
    "ReasmOverlaps",
];
const MPTCPEXT_FIELDS: &[&str] = &[
    "MPCapableSYNRX",
    "MPCapableSYNTX",
    "MPCapableSYNACKRX",
    "MPCapableACKRX",
    "MPCapableFallbackACK",
    "MPCapableFallbackSYNACK",
    "MPCapableSYNTXDrop",
    "MPCapableSYNTXDisabled",
    "MPCapableEndpAttempt",
    "MPFallbackTokenInit",
    "MPTCPRetrans",
    "MPJoinNoTokenFound",
    "MPJoinSynRx",
    "MPJoinSynBackupRx",
    "MPJoinSynAckRx",
    "MPJoinSynAckBackupRx",
    "MPJoinSynAckHMacFailure",
    "MPJoinAckRx",
    "MPJoinAckHMacFailure",
    "MPJoinRejected",
    "MPJoinSynTx",
    "MPJoinSynTxCreatSkErr",
    "MPJoinSynTxBindErr",
    "MPJoinSynTxConnectErr",
    "DSSNotMatching",
    "DSSCorruptionFallback",
    "DSSCorruptionReset",
    "InfiniteMapTx",
    "InfiniteMapRx",
    "DSSNoMatchTCP",
    "DataCsumErr",
    "OFOQueueTail",
    "OFOQueue",
    "OFOMerge",
    "NoDSSInWindow",
    "DuplicateData",
    "AddAddr",
    "AddAddrTx",
    "AddAddrTxDrop",
    "EchoAdd",
    "EchoAddTx",
    "EchoAddTxDrop",
    "PortAdd",
    "AddAddrDrop",
    "MPJoinPortSynRx",
    "MPJoinPortSynAckRx",
    "MPJoinPortAckRx",
    "MismatchPortSynRx",
    "MismatchPortAckRx",
    "RmAddr",
    "RmAddrDrop",
    "RmAddrTx",
    "RmAddrTxDrop",
    "RmSubflow",
    "MPPrioTx",
    "MPPrioRx",
    "MPFailTx",
    "MPFailRx",
    "MPFastcloseTx",
    "MPFastcloseRx",
    "MPRstTx",
    "MPRstRx",
    "SubflowStale",
    "SubflowRecover",
    "SndWndShared",
    "RcvWndShared",
    "RcvWndConflictUpdate",
    "RcvWndConflict",
    "MPCurrEstab",
    "Blackhole",
    "MPCapableDataFallback",
    "MD5SigFallback",
    "DssFallback",
    "SimultConnectFallback",
    "FallbackFailed",
    "WinProbe",
];

/// The ICMP types `/proc/net/snmp`'s `Icmp` line counts: (field, type).
const ICMP_TYPES: &[(&str, u8)] = &[
    ("DestUnreachs", 3),
    ("TimeExcds", 11),
    ("ParmProbs", 12),
    ("SrcQuenchs", 4),
    ("Redirects", 5),
    ("Echos", 8),
    ("EchoReps", 0),
    ("Timestamps", 13),
    ("TimestampReps", 14),
    ("AddrMasks", 17),
    ("AddrMaskReps", 18),
];

/// The ICMPv6 types of `/proc/net/snmp6`'s `Icmp6` fields.
const ICMP6_TYPES: &[(&str, u8)] = &[
    ("DestUnreachs", 1),
    ("PktTooBigs", 2),
    ("TimeExcds", 3),
    ("ParmProblems", 4),
    ("Echos", 128),
    ("EchoReplies", 129),
    ("GroupMembQueries", 130),
    ("GroupMembResponses", 131),
    ("GroupMembReductions", 132),
    ("RouterSolicits", 133),
    ("RouterAdvertisements", 134),
    ("NeighborSolicits", 135),
    ("NeighborAdvertisements", 136),
    ("Redirects", 137),
    ("MLDv2Reports", 143),
];

fn sum(a: &[AtomicU64; 256]) -> u64 {
    a.iter().map(get).sum()
}

/// An ICMP field's value: `In`/`Out` and a type name, or a total.
fn icmp_field(m: &IcmpMib, name: &str, types: &[(&str, u8)]) -> u64 {
    let (dir, rest) = if let Some(r) = name.strip_prefix("In") {
        (&m.input, r)
    } else if let Some(r) = name.strip_prefix("Out") {
        (&m.output, r)
    } else {
        return 0;
    };
    if rest == "Msgs" {
        return sum(dir);
    }
    types
        .iter()
        .find(|(n, _)| *n == rest)
        .map_or(0, |&(_, t)| get(&dir[t as usize]))
}

fn ip_field(m: &IpMib, name: &str) -> u64 {
    match name {
        "InReceives" => get(&m.in_receives),
        "InDelivers" => get(&m.in_delivers),
        "OutRequests" | "OutTransmits" => get(&m.out_requests),
        "OutNoRoutes" => get(&m.out_no_routes),
        _ => 0,
    }
}

fn udp_field(m: &UdpMib, name: &str) -> u64 {
    match name {
        "InDatagrams" => get(&m.in_datagrams),
        "NoPorts" => get(&m.no_ports),
        "InErrors" => get(&m.in_errors),
        "OutDatagrams" => get(&m.out_datagrams),
        "RcvbufErrors" => get(&m.rcvbuf_errors),
        _ => 0,
    }
}

/// Two lines: the names after `prefix`, then the values.
fn table(out: &mut String, prefix: &str, fields: &[&str], value: impl Fn(&str) -> String) {
    let _ = write!(out, "{prefix}:");
    for f in fields {
        let _ = write!(out, " {f}");
    }
    let _ = write!(out, "\n{prefix}:");
    for f in fields {
        let _ = write!(out, " {}", value(f));
    }
    out.push('\n');
}

/// `/proc/net/snmp`; `forwarding` is `net.ipv4.ip_forward`, `curr_estab` the
/// connections in ESTABLISHED or CLOSE-WAIT.
pub fn snmp(s: &Snmp, forwarding: bool, curr_estab: u64) -> String {
    let mut out = String::new();
    table(&mut out, "Ip", IP_FIELDS, |f| match f {
        // 1: forwarding, 2: not (RFC 1213).
        "Forwarding" => if forwarding { "1" } else { "2" }.to_string(),
        "DefaultTTL" => "64".to_string(),
        _ => ip_field(&s.ip[0], f).to_string(),
    });
    table(&mut out, "Icmp", ICMP_FIELDS, |f| {
        icmp_field(&s.icmp[0], f, ICMP_TYPES).to_string()
    });
    // IcmpMsg: each type seen, In then Out, at most 16 a line (icmpmsg_put).
    let m = &s.icmp[0];
    let seen: Vec<(String, u64)> = (0..512usize)
        .filter_map(|i| {
            let (dir, arr) = if i < 256 {
                ("In", &m.input)
            } else {
                ("Out", &m.output)
            };
            let v = get(&arr[i & 0xff]);
            (v != 0).then(|| (format!("{dir}Type{}", i & 0xff), v))
        })
        .collect();
    for chunk in seen.chunks(16) {
        let names: Vec<&str> = chunk.iter().map(|(n, _)| n.as_str()).collect();
        table(&mut out, "IcmpMsg", &names, |f| {
            chunk
                .iter()
                .find(|(n, _)| n == f)
                .map_or(0, |(_, v)| *v)
                .to_string()
        });
    }
    let t = &s.tcp;
    table(&mut out, "Tcp", TCP_FIELDS, |f| {
        match f {
            "RtoAlgorithm" => 1,
            "RtoMin" => 200,
            "RtoMax" => 120000,
            "MaxConn" => return "-1".to_string(),
            "ActiveOpens" => get(&t.active_opens),
            "PassiveOpens" => get(&t.passive_opens),
            "AttemptFails" => get(&t.attempt_fails),
            "EstabResets" => get(&t.estab_resets),
            "CurrEstab" => curr_estab,
            "InSegs" => get(&t.in_segs),
            "OutSegs" => get(&t.out_segs),
            "RetransSegs" => get(&t.retrans_segs),
            "OutRsts" => get(&t.out_rsts),
            _ => 0,
        }
        .to_string()
    });
    table(&mut out, "Udp", UDP_FIELDS, |f| {
        udp_field(&s.udp[0], f).to_string()
    });
    table(&mut out, "UdpLite", UDP_FIELDS, |f| {
        udp_field(&s.udplite[0], f).to_string()
    });
    out
}

/// `/proc/net/snmp6`: a name and a value a line (`%-32s\t%lu`).
pub fn snmp6(s: &Snmp) -> String {
    let mut out = String::new();
    let mut line = |name: String, v: u64| {
        let _ = writeln!(out, "{name:<32}\t{v}");
    };
    for f in IP6_FIELDS {
        line(format!("Ip6{f}"), ip_field(&s.ip[1], f));
    }
    for f in ICMP6_FIELDS {
        line(format!("Icmp6{f}"), icmp_field(&s.icmp[1], f, ICMP6_TYPES));
    }
    let m = &s.icmp[1];
    for (dir, arr) in [("In", &m.input), ("Out", &m.output)] {
        for (t, c) in arr.iter().enumerate() {
            let v = get(c);
            if v != 0 {
                line(format!("Icmp6{dir}Type{t}"), v);
            }
        }
    }
    for f in UDP6_FIELDS {
        line(format!("Udp6{f}"), udp_field(&s.udp[1], f));
    }
    for f in UDPLITE6_FIELDS {
        line(format!("UdpLite6{f}"), udp_field(&s.udplite[1], f));
    }
    out
}

/// `/proc/net/netstat`: the extended counters, none of which the sandbox's stacks
/// keep but the octets and ECN-less datagrams received.
pub fn netstat(s: &Snmp) -> String {
    let mut out = String::new();
    table(&mut out, "TcpExt", TCPEXT_FIELDS, |_| "0".to_string());
    let received = get(&s.ip[0].in_receives) + get(&s.ip[1].in_receives);
    table(&mut out, "IpExt", IPEXT_FIELDS, |f| match f {
        "InNoECTPkts" => received.to_string(),
        _ => "0".to_string(),
    });
    table(&mut out, "MPTcpExt", MPTCPEXT_FIELDS, |_| "0".to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_linux() {
        let s = Snmp::default();
        inc(&s.icmp[0].input[3]);
        inc(&s.icmp[0].output[3]);
        inc(&s.udp[0].out_datagrams);
        let t = snmp(&s, false, 2);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 12);
        assert!(lines[1].starts_with("Ip: 2 64 0"));
        assert_eq!(lines[4], "IcmpMsg: InType3 OutType3");
        assert_eq!(lines[5], "IcmpMsg: 1 1");
        assert!(lines[3].starts_with("Icmp: 1 0 0 1 "));
        assert_eq!(lines[7], "Tcp: 1 200 120000 -1 0 0 0 0 2 0 0 0 0 0 0");
        assert_eq!(lines[9], "Udp: 0 0 0 1 0 0 0 0 0");
        let six = snmp6(&s);
        assert!(six.starts_with("Ip6InReceives                   \t0\n"));
        assert_eq!(six.lines().count(), 86);
        assert_eq!(netstat(&s).lines().count(), 6);
    }
}
