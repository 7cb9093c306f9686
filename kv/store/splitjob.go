package store

import (
	"bytes"
	"context"
	"fmt"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/storage"
)

// A split's file is written off the store's goroutine (split.go, step b):
// only the range that splits waits for it.
//
//  1. The range's apply reaches the Split entry at index i (applySplit):
//     the round's batch so far is committed, synced (step a), a Pebble
//     snapshot of the database is taken, and a goroutine starts writing
//     the file from it (splitJob). The apply stops there; the round's
//     advance tells the range's core so (SplitCore.AdvancePaused: the
//     entries after i are handed out again once the apply resumes; in a
//     Raft range, configuration changes among them wait).
//  2. The loop goes on with every other range, and with this one's core:
//     it appends (accepts), votes (promises), commits and sends as
//     before; what depends on the apply waits (reads at an index past
//     i - 1, proposals' answers, a leader's quiescence, another split of
//     the range).
//  3. When the goroutine ends, the loop (takeSplits, at the start of the
//     next round) ingests the file, records the split (splitApplied),
//     answers the split's proposal, starts the new range's replica, and
//     resumes the apply (SplitCore.ResumeApply): the next round applies
//     the entries after i.
//
// What can happen meanwhile:
//
//   - The replica is removed (reconcile) or fails (failRange), or the
//     store closes: the job is cancelled (cancelSplit), its goroutine
//     stops within stopCheckRecords records and its file is removed. The
//     split is not applied here; a removed replica's data goes with it,
//     and a failed or closed one replays the split from its log at the
//     next start.
//   - The range's core takes a snapshot (it fell behind, and a transfer
//     that started before or during the split finished): the snapshot
//     is past i, so it holds the split already. The job is cancelled
//     before the install is staged (stageInstall), and the core's pause
//     ends with the restore.
//   - The catalog assigns here the range the split founds (its leader
//     split sooner): reconcile does not start its replica while a split
//     here founds it (founding), since the file would overwrite what the
//     replica wrote; the split starts it once ingested, or the next
//     reconcile if the split was cancelled.
//
// A crash is as before (split.go): before the ingest the range is at
// i - 1 and replays the split, and start removes the staged file.
//
// A driven store (OpenDriven: no goroutine of its own) waits at the start
// of each round for the files of the splits in flight, so that a
// simulation replays from its seed: the split is written in the
// background all the same, and applied at the next round.

// maxSplitWrites bounds the split files written at once: each reads its
// range once and writes it once at the disk's speed, so more at once only
// share the disk (and, on a small machine, the cores the loop needs). A
// split beyond it holds its Pebble snapshot and waits for a slot; its
// range waits with it, the others do not.
const maxSplitWrites = 2

// splitJobs are the store's splits in flight. Loop only, but for wake and
// slots.
type splitJobs struct {
	// inFlight are the jobs whose goroutine the loop has not taken back,
	// in start order: running, written, or cancelled and still stopping.
	inFlight []*splitJob
	// wake tells the loop that a goroutine ended. Size 1: a wake-up is
	// coalesced with the ones not taken yet, since the loop looks at every
	// job when it wakes.
	wake chan struct{}
	// slots bounds the files written at once (maxSplitWrites).
	slots chan struct{}
}

// splitJob is one split whose file a goroutine writes.
type splitJob struct {
	r *replica
	p *splitPlan
	// cmdID and data are the Split entry's command ID and encoded
	// command: its proposal's waiter is answered once the split is
	// ingested.
	cmdID uint64
	data  []byte
	// newSpan is the range's span after the split.
	newSpan catalog.Span
	cancel  context.CancelFunc
	// cancelled: the loop gave the job up; its files are removed.
	cancelled bool
	// advanced: the round that started the job told the core that its
	// apply paused (Store.advance).
	advanced bool
	// done is closed when the goroutine has ended; files, sizes and err
	// are its results, read only after.
	done  chan struct{}
	files []string
	sizes splitSizes
	err   error
}

func (s *Store) initSplits() {
	s.splits = splitJobs{wake: make(chan struct{}, 1), slots: make(chan struct{}, maxSplitWrites)}
}

// startSplitJob starts writing the file of p, r's split, from the database
// as it stands (the entries before the split are committed and synced).
// r's apply stops at the split until takeSplits finishes it. Loop only.
func (s *Store) startSplitJob(r *replica, p *splitPlan, newSpan catalog.Span) *splitJob {
	ctx, cancel := context.WithCancel(context.Background())
	j := &splitJob{r: r, p: p, newSpan: newSpan, cancel: cancel, done: make(chan struct{})}
	r.splitting = j
	s.splits.inFlight = append(s.splits.inFlight, j)
	go s.writeSplitJob(ctx, j, s.DB.NewSnapshot())
	return j
}

// writeSplitJob is a split's goroutine: it writes the job's file from
// snap, which it closes, then wakes the loop.
func (s *Store) writeSplitJob(ctx context.Context, j *splitJob, snap *storage.Snapshot) {
	defer func() {
		select {
		case s.splits.wake <- struct{}{}:
		default:
		}
	}()
	defer close(j.done)
	defer func() { _ = snap.Close() }()
	select {
	case s.splits.slots <- struct{}{}:
	case <-ctx.Done():
		j.err = ctx.Err()
		return
	}
	defer func() { <-s.splits.slots }()
	s.splitStep("writing")
	j.files, j.sizes, j.err = writeSplitFiles(ctx, s.DB, snap, j.p, s.Config.Canary.SplitStateFirst)
}

// takeSplits takes back the goroutines that ended, in start order:
// finishes their splits, or removes the files of the cancelled ones. A
// driven store waits for every one first. Loop only; an error is the
// node's.
func (s *Store) takeSplits() error {
	jobs := s.splits.inFlight
	if len(jobs) == 0 {
		return nil
	}
	s.splits.inFlight = nil
	var err error
	for i, j := range jobs {
		if s.driven {
			<-j.done
		}
		select {
		case <-j.done:
		default:
			s.splits.inFlight = append(s.splits.inFlight, j)
			continue
		}
		if err = s.finishSplit(j); err != nil {
			// The rest wait for the store's shutdown (stopSplits).
			s.splits.inFlight = append(s.splits.inFlight, jobs[i+1:]...)
			break
		}
	}
	return err
}

// finishSplit ingests a written split and resumes its range's apply, or
// faults the range if its file could not be written or ingested (as a
// failed apply does).
func (s *Store) finishSplit(j *splitJob) error {
	r, p := j.r, j.p
	if j.cancelled || r.splitting != j || !s.running(r) {
		s.removeSplitFiles(p, j.files)
		return nil
	}
	r.splitting = nil
	err := j.err
	if err == nil {
		err = s.ingestSplitFiles(p, j.files)
	}
	if err != nil {
		s.removeSplitFiles(p, j.files)
		err = fmt.Errorf("kv: range %d: the split at %d: %w", p.old, p.index, err)
		return s.isolate(r, consensus.NewRangeFault(consensus.FaultApply, err))
	}
	s.splitApplied(r, j)
	if wt, ok := r.waiters[j.cmdID]; ok && j.cmdID != 0 && (bytes.Equal(wt.data, j.data) || s.Config.Canary.WaitersByID) {
		delete(r.waiters, j.cmdID)
		wt.done(command.Result{Version: p.index})
	}
	r.Core.(consensus.SplitCore).ResumeApply()
	s.wake(r)
	return s.startBorn(r)
}

// advance advances r's core after a round: paused at the split that
// this round's apply started, if any (SplitCore.AdvancePaused).
func (s *Store) advance(r *replica, held *heldRound) {
	if j := r.splitting; j != nil && !j.advanced {
		// Its round synced when the split committed (commitSoFar).
		j.advanced = true
		r.Core.(consensus.SplitCore).AdvancePaused(r.Applied)
		return
	}
	if ac, ok := r.Core.(consensus.AsyncCore); ok && held != nil {
		w := ac.AdvanceWritten()
		if s.Config.Canary.SyncedBeforeSync {
			ac.Synced(w)
			return
		}
		held.written = append(held.written, heldWritten{r, w})
		return
	}
	r.Core.Advance()
}

// cancelSplit gives up r's split in flight, if any: its goroutine stops
// soon and its files are removed once it has (takeSplits). The core's
// apply resumes where it paused; what made the store give up (a snapshot
// past the split, the replica's removal) decides what comes next. Loop
// only.
func (s *Store) cancelSplit(r *replica, why string) {
	j := r.splitting
	if j == nil {
		return
	}
	r.splitting = nil
	j.cancelled = true
	j.cancel()
	if j.advanced {
		r.Core.(consensus.SplitCore).ResumeApply()
	}
	// The range the split was to found may start from the catalog now.
	s.catalogChanged = true
	s.Logger.Info("gave up a split in flight", "range", j.p.old, "index", j.p.index, "why", why)
}

// founding reports whether a split in flight here writes the state of
// range id, which it founds: reconcile leaves that range to the split.
func (s *Store) founding(id uint64) bool {
	for _, j := range s.splits.inFlight {
		if !j.cancelled && j.p.create && j.p.born == id {
			return true
		}
	}
	return false
}

// stopSplits cancels every split in flight and waits for their
// goroutines, removing their files: at shutdown, so that no goroutine
// outlives the store or reads a closed database. The ranges replay their
// splits at the next start.
func (s *Store) stopSplits() {
	for _, j := range s.splits.inFlight {
		j.cancel()
		j.cancelled = true
		if j.r.splitting == j {
			j.r.splitting = nil
		}
	}
	for _, j := range s.splits.inFlight {
		<-j.done
		s.removeSplitFiles(j.p, j.files)
	}
	s.splits.inFlight = nil
}

// SplitsInFlight returns how many split files are being written (or
// written and not yet ingested). Loop only.
func (s *Store) SplitsInFlight() int {
	n := 0
	for _, j := range s.splits.inFlight {
		if !j.cancelled {
			n++
		}
	}
	return n
}
