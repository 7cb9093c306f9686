package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/kv/consensus"
)

// Metrics are the node's Prometheus metrics (SPEC.md "Metrics"): base
// units, quorumkv_ prefix, _total on counters. They are registered on the
// Registerer given to NewMetrics, never on a global one, so several nodes
// can run in one process.
type Metrics struct {
	// RequestDuration: API requests clients sent to this node, by
	// keyspace, operation, mode and result (ok, or the error's Connect
	// code).
	RequestDuration *prometheus.HistogramVec
	// ForwardedRequests: requests another node forwarded here to serve
	// (this node leads the key's range, or holds a replica of it), by
	// keyspace, operation and result. The node the client called counts
	// them in RequestDuration.
	ForwardedRequests *prometheus.CounterVec

	// Consensus, by protocol (raft, paxos).
	Proposals     *prometheus.CounterVec // commands proposed
	Applied       *prometheus.CounterVec // entries applied (commits seen by the state machine)
	LeaderChanges *prometheus.CounterVec // a replica saw its range's leader change
	Elections     *prometheus.CounterVec // a replica started a campaign
	// InvalidMessages counts peer messages a core refused as no correct
	// peer's (raft.ErrInvalidMessage, paxos.ErrInvalidMessage): a bug or
	// a forgery.
	InvalidMessages *prometheus.CounterVec
	// AuthRefusals counts requests refused by authentication (kv/auth),
	// by reason: unauthenticated (no or bad credentials) or
	// permission_denied.
	AuthRefusals *prometheus.CounterVec
	ApplyLag     *prometheus.GaugeVec // committed but not yet applied entries, summed over replicas
	Ranges       *prometheus.GaugeVec // replicas on this node, by role (leader, follower, candidate)
	Quiesced     prometheus.Gauge     // replicas not ticked because their range is idle
	ReadyRounds  prometheus.Counter   // rounds of the store loop that persisted something
	ReadySyncs   prometheus.Counter   // of those, rounds that synced the WAL

	// Faults of one range (kv/store/rangefault.go): replicas stopped by one, and
	// faults by kind (open, install, apply, compact: the replica stopped;
	// snapshot: a Raft leader could not build the snapshot a follower
	// needs, and serves on).
	RangesFailed prometheus.Gauge
	RangeFaults  *prometheus.CounterVec

	// Streamed snapshots (kv/store/snapshot.go): transfers this node
	// received, by result (installed: its core took it; failed: dropped
	// for a bad stream, a timeout or a snapshot gone), and their bytes.
	SnapshotTransfers *prometheus.CounterVec
	SnapshotBytes     prometheus.Counter

	// The placement driver (kv/placement.go): ranges with a replica on a
	// node gossip sees dead, as this node's catalog has them, and the
	// replica moves this node proposed as meta's leader.
	RangesUnderReplicated prometheus.Gauge
	ReplicaMoves          *prometheus.CounterVec
	ReplicaMovesInFlight  prometheus.Gauge
	// Splits: range splits this node's replicas applied (kv/store/split.go).
	Splits prometheus.Counter

	// WALSyncDuration: Pebble WAL fsyncs.
	WALSyncDuration prometheus.Histogram

	// ReadRepairs: eventual reads' write-backs of the newest record to
	// stale replicas, by result (ok, failed, dropped: no free slot).
	ReadRepairs *prometheus.CounterVec

	// Hinted handoff of eventual writes (kv/records/hints.go).
	HintsQueued    prometheus.Counter     // hints stored for a replica that missed a write
	HintsDelivered prometheus.Counter     // hints a returned replica acknowledged (and deleted)
	HintsDropped   *prometheus.CounterVec // hints not stored or deleted unreplayed, by reason: full, expired, corrupt, dropped
	HintsPending   prometheus.Gauge       // hints held

	// AntiEntropyMismatches: Merkle tree leaves that differed between two
	// replicas of an eventual range in an anti-entropy exchange.
	AntiEntropyMismatches prometheus.Counter
	// AntiEntropyRepairs: records that this node's anti-entropy rounds
	// wrote to a replica, here or on the peer, newer than what it held.
	AntiEntropyRepairs prometheus.Counter
	// TombstonesPurged: tombstones of eventual keyspaces deleted once
	// every replica held them (kv/eventual/antientropy.go).
	TombstonesPurged prometheus.Counter
	// ClockOffsetRefusals: eventual writes refused because a version was
	// more than the maximum clock offset ahead of a clock (kv/eventual/eventual_clock.go),
	// by what refused: replica (a record or compare-and-swap proposal ahead
	// of this replica's clock), coordinator (this node's clock behind the
	// versions it sees, or ahead of every other replica's).
	ClockOffsetRefusals *prometheus.CounterVec

	// Staleness of eventual reads, by keyspace (issue 6): reads answered,
	// and of those the reads whose answer was older than the newest
	// version any replica held, late answers included. The staleness rate
	// is WRNStaleReads / WRNReads.
	WRNReads      *prometheus.CounterVec
	WRNStaleReads *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	byProtocol := []string{"protocol"}
	m := &Metrics{
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quorumkv_request_duration_seconds",
			Help:    "Duration of API requests by keyspace, operation, mode and result.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 100µs to ~13s
		}, []string{"keyspace", "operation", "mode", "result"}),
		ForwardedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_forwarded_requests_total",
			Help: "Requests another node forwarded here to serve, by keyspace, operation and result; the node the client called counts them in quorumkv_request_duration_seconds.",
		}, []string{"keyspace", "operation", "result"}),
		Proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_consensus_proposals_total", Help: "Commands proposed to range consensus groups led here.",
		}, byProtocol),
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_consensus_applied_entries_total", Help: "Committed log entries applied by replicas on this node.",
		}, byProtocol),
		LeaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_consensus_leader_changes_total", Help: "Leader (or ballot owner) changes seen by replicas on this node.",
		}, byProtocol),
		Elections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_consensus_elections_total", Help: "Campaigns started by replicas on this node.",
		}, byProtocol),
		InvalidMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_consensus_invalid_messages_total", Help: "Peer messages refused by a consensus core as no correct peer's (malformed, or contradicting this replica's log).",
		}, byProtocol),
		AuthRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_auth_refusals_total", Help: "Requests refused because their caller was not logged in or its credentials did not hold (unauthenticated), or its roles did not allow them (permission_denied).",
		}, []string{"reason"}),
		ApplyLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quorumkv_consensus_apply_lag_entries", Help: "Entries committed but not yet applied, summed over replicas.",
		}, byProtocol),
		Ranges: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quorumkv_ranges", Help: "Range replicas on this node by role.",
		}, []string{"role"}),
		Quiesced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quorumkv_ranges_quiesced", Help: "Range replicas on this node not ticked because their range is idle.",
		}),
		ReadyRounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_store_rounds_total", Help: "Store loop rounds that persisted or applied something.",
		}),
		ReadySyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_store_synced_rounds_total", Help: "Store loop rounds that synced the WAL: one sync for all ranges.",
		}),
		RangesFailed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quorumkv_ranges_failed",
			Help: "Range replicas on this node stopped by a fault of their own range (snapshot, apply, compaction or open); the node's other ranges go on.",
		}),
		RangesUnderReplicated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quorumkv_ranges_underreplicated",
			Help: "Ranges of the catalog with a replica on a node gossip sees dead, as this node sees them; the placement driver moves those replicas once the node has been dead for --dead-after.",
		}),
		ReplicaMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_replica_moves_total",
			Help: "Replica moves this node proposed as meta's leader (the placement driver), by result: applied or refused.",
		}, []string{"result"}),
		Splits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_range_splits_total",
			Help: "Range splits this node's replicas applied: each split counts once on every replica of the range that split.",
		}),
		ReplicaMovesInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quorumkv_replica_moves_in_flight",
			Help: "Replicas the catalog moved off a node that their range has not let go yet (the old replica still runs), as this node sees them.",
		}),
		RangeFaults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_range_faults_total",
			Help: "Faults of one range on this node, by kind: open, install, apply and compact stop the replica; snapshot (a follower needs a snapshot that cannot be built) does not.",
		}, []string{"kind"}),
		SnapshotTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_snapshot_transfers_total",
			Help: "Range snapshots this node pulled from another, by result: received (all chunks written), failed (a bad stream, a timeout, the snapshot gone; nothing of it installed).",
		}, []string{"result"}),
		SnapshotBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_snapshot_received_bytes_total",
			Help: "Bytes of range snapshot records this node received.",
		}),
		WALSyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quorumkv_pebble_wal_sync_duration_seconds",
			Help:    "Duration of Pebble WAL fsyncs.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16), // 50µs to ~1.6s
		}),
		ReadRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_wrn_read_repairs_total",
			Help: "Read repairs of eventual keyspaces (the newest record written back to a stale replica), by result: ok, failed, dropped.",
		}, []string{"result"}),
		HintsQueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_wrn_hints_queued_total", Help: "Hints stored for replicas that missed an eventual write.",
		}),
		HintsDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_wrn_hints_delivered_total", Help: "Hints replayed to and acknowledged by their replica.",
		}),
		HintsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_wrn_hints_dropped_total",
			Help: "Hints not stored (full: over the count or byte bound) or deleted unreplayed (expired, corrupt, dropped: their keyspace was dropped).",
		}, []string{"reason"}),
		HintsPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quorumkv_wrn_hints_pending", Help: "Hints held for replicas, not yet delivered.",
		}),
		AntiEntropyMismatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_wrn_antientropy_mismatches_total",
			Help: "Merkle tree leaves that differed between two replicas of an eventual range in anti-entropy exchanges.",
		}),
		AntiEntropyRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_wrn_antientropy_repairs_total",
			Help: "Records that this node's anti-entropy rounds wrote to a replica of an eventual range (its own or the peer's), newer than what it held.",
		}),
		TombstonesPurged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_wrn_tombstones_purged_total",
			Help: "Tombstones of eventual keyspaces purged by anti-entropy once every replica held them.",
		}),
		ClockOffsetRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_wrn_clock_offset_refusals_total",
			Help: "Eventual writes refused because a version was more than the maximum clock offset ahead of a clock, " +
				"by what refused: replica (a version ahead of its clock), coordinator (its own clock off).",
		}, []string{"by"}),
		WRNReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_wrn_reads_total", Help: "Reads of eventual keyspaces answered, by keyspace.",
		}, []string{"keyspace"}),
		WRNStaleReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_wrn_stale_reads_total",
			Help: "Reads of eventual keyspaces that answered a version older than the newest one any replica held " +
				"(late answers included), by keyspace. Divide by quorumkv_wrn_reads_total for the staleness rate.",
		}, []string{"keyspace"}),
	}
	// Every kind is exported from the start, at 0, so that a rate or an
	// alert on one needs no first fault.
	for _, k := range consensus.FaultKinds {
		m.RangeFaults.WithLabelValues(string(k))
	}
	for _, r := range []string{"received", "failed"} {
		m.SnapshotTransfers.WithLabelValues(r)
	}
	for _, r := range []string{"unauthenticated", "permission_denied"} {
		m.AuthRefusals.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.RequestDuration, m.ForwardedRequests, m.Proposals, m.Applied, m.LeaderChanges, m.Elections, m.InvalidMessages, m.AuthRefusals,
			m.ApplyLag, m.Ranges, m.Quiesced, m.ReadyRounds, m.ReadySyncs, m.RangesFailed, m.RangeFaults, m.SnapshotTransfers, m.SnapshotBytes, m.RangesUnderReplicated, m.ReplicaMoves, m.ReplicaMovesInFlight, m.Splits, m.WALSyncDuration, m.ReadRepairs,
			m.HintsQueued, m.HintsDelivered, m.HintsDropped, m.HintsPending, m.AntiEntropyMismatches, m.AntiEntropyRepairs, m.TombstonesPurged, m.ClockOffsetRefusals, m.WRNReads, m.WRNStaleReads)
	}
	return m
}

// ObserveWALSync is storage.Options.OnWALSync.
func (m *Metrics) ObserveWALSync(d time.Duration) { m.WALSyncDuration.Observe(d.Seconds()) }

// RegisterBuildInfo registers quorumkv_build_info{version, go_version} = 1.
func RegisterBuildInfo(reg prometheus.Registerer, version, goVersion string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "quorumkv_build_info", Help: "Build information; the value is always 1.",
	}, []string{"version", "go_version"})
	g.WithLabelValues(version, goVersion).Set(1)
	reg.MustRegister(g)
}

// GossipStates are the states quorumkv_gossip_members counts, each
// exported, at 0 when no member is in it. Suspicion is not among them:
// memberlist (v0.7) tells no one which members it suspects, so a
// "suspect" series would always read 0; a suspect member counts as
// alive until failure detection declares it dead.
var GossipStates = []string{"alive", "dead", "left"}

// RegisterGossipMembers registers quorumkv_gossip_members{state}: the
// members this node's gossip sees in each of GossipStates, counting this
// node. counts is called at every scrape; a state it leaves out is 0.
func RegisterGossipMembers(reg prometheus.Registerer, counts func() map[string]int) {
	reg.MustRegister(gossipMembers{counts})
}

var gossipMembersDesc = prometheus.NewDesc("quorumkv_gossip_members",
	"Nodes this node's gossip sees, itself included, by state: alive (suspects included), "+
		"dead (failure detection gave up on it), left (it said goodbye).", []string{"state"}, nil)

// gossipMembers reads the counts at each scrape, so they are never stale
// and no goroutine keeps them.
type gossipMembers struct{ counts func() map[string]int }

func (g gossipMembers) Describe(ch chan<- *prometheus.Desc) { ch <- gossipMembersDesc }

func (g gossipMembers) Collect(ch chan<- prometheus.Metric) {
	counts := g.counts()
	for _, s := range GossipStates {
		ch <- prometheus.MustNewConstMetric(gossipMembersDesc, prometheus.GaugeValue, float64(counts[s]), s)
	}
}
