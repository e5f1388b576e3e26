package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// The journal is the Store's memory of the writes that took something
// away in the last journalWindow: revoked tokens, deleted users and OAuth
// clients, deny-listed jtis, ended sessions, switch-offs (a token or a
// client disabled, a user disabled or its token_login turned off) and
// changed passwords and client secrets, and token secrets rotated away.
// When the Store finds a new primary (a Sentinel or Cluster failover) it
// writes them again there, so that a
// write the old primary took but no replica had (one whose WAIT timed
// out: answered 503, or one made with durability off) is not undone by
// the failover. A replay only takes away, never gives back: a deleted
// record is deleted again (already gone is fine), a switch-off is switched
// off again, a password or secret is set again only if the record still
// has the one the write replaced (a rotation too: the old secret then
// ends when it was told to). Creates, and changes that give
// something (a token switched on, a permission granted), are not replayed:
// replaying them could undo a later revocation made through another node.
const (
	journalWindow = 30 * time.Second
	journalMax    = 10000
	// replayAttempts bounds the attempts of one replayed write, a pause
	// of replayPause apart, while the new primary settles.
	replayAttempts = 3
	replayPause    = 200 * time.Millisecond
	replayTimeout  = 5 * time.Second
)

// journalEntry is one write to replay.
type journalEntry struct {
	at     time.Time
	op     string
	replay func(context.Context) error
}

// journal is a bounded list of recent entries, oldest first.
type journal struct {
	mu      sync.Mutex
	entries []journalEntry
}

// add appends an entry, dropping those older than journalWindow and the
// oldest beyond journalMax.
func (j *journal) add(now time.Time, op string, replay func(context.Context) error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.prune(now)
	if len(j.entries) >= journalMax {
		j.entries = j.entries[1:]
	}
	j.entries = append(j.entries, journalEntry{at: now, op: op, replay: replay})
}

// prune drops the entries older than journalWindow.
func (j *journal) prune(now time.Time) {
	i := 0
	for i < len(j.entries) && now.Sub(j.entries[i].at) > journalWindow {
		i++
	}
	j.entries = j.entries[i:]
}

// recent returns the entries of the last journalWindow.
func (j *journal) recent(now time.Time) []journalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.prune(now)
	return append([]journalEntry(nil), j.entries...)
}

// taken reports whether a write that returned err is on the primary: it
// succeeded, or only its wait for the replicas failed.
func taken(err error) bool {
	var nd *store.NotDurableError
	return err == nil || errors.As(err, &nd)
}

// note journals a write that returned err, if it took effect, on a
// Sentinel-managed or Cluster client (those that replay).
func (s *Store) note(err error, op string, replay func(context.Context) error) {
	if s.primary != nil && taken(err) {
		s.journal.add(time.Now(), op, replay)
	}
}

// gone treats "not found" as done: what a replay deletes is gone.
func gone(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// ReplayReport says what the last replay did (see the journal).
type ReplayReport struct {
	// At is when it ran.
	At time.Time
	// Replayed and Failed count the writes written again and those that
	// could not be.
	Replayed, Failed int
	// Errors are the failures, one per failed write.
	Errors []error
	// NotDurable says that the replayed writes are on the new primary
	// but its replicas did not acknowledge them (a *store.NotDurableError;
	// nil: they did, or there was nothing to wait for). A new primary
	// often has no replica yet (after its old primary was killed); the
	// writes are replayed all the same, and again at the next new
	// primary.
	NotDurable error
}

// LastReplay returns the report of the latest replay (zero before any).
func (s *Store) LastReplay() ReplayReport {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	return s.lastReplay
}

// replay writes the journal's recent entries again and then waits once for
// the replicas (see Durability): the wait, which a new primary without a
// replica cannot meet, must not use up the attempts and the time of the
// writes themselves. See the journal.
func (s *Store) replay() ReplayReport {
	ctx, cancel := context.WithTimeout(s.life, replayTimeout)
	defer cancel()
	r := ReplayReport{At: time.Now()}
	for _, e := range s.journal.recent(r.At) {
		var err error
		for attempt := range replayAttempts {
			if attempt > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(replayPause):
				}
			}
			if err = e.replay(ctx); err == nil {
				break
			}
		}
		if err != nil {
			r.Failed++
			r.Errors = append(r.Errors, err)
		} else {
			r.Replayed++
		}
	}
	if r.Replayed > 0 {
		r.NotDurable = s.durable(ctx, fmt.Sprintf("replay of %d writes", r.Replayed), nil)
	}
	s.replayMu.Lock()
	s.lastReplay = r
	s.replayMu.Unlock()
	return r
}
