package accesstoken

import (
	"context"
	"sync"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/nodecopy"
	"github.com/tokengate/tokengate/internal/store"
)

// DenyList is this node's copy of the revoked access tokens (by jti),
// loaded from the store once and then kept current by EventDenied.
type DenyList struct {
	mu sync.RWMutex
	m  map[string]time.Time
	// loaded holds nothing: its load merges the stored list into m (so
	// that a denial added by an event during the read is not lost), and
	// it says whether m holds the stored list.
	loaded *nodecopy.Copy[struct{}]
}

// NewDenyList returns a deny-list that loads itself on first use.
func NewDenyList(s store.Denials) *DenyList {
	d := &DenyList{m: make(map[string]time.Time)}
	d.loaded = nodecopy.New(func(ctx context.Context) (struct{}, error) {
		list, err := s.ListDenied(ctx)
		if err != nil {
			return struct{}{}, apierr.FromStore(err)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, x := range list {
			d.addLocked(x.JTI, x.Until)
		}
		return struct{}{}, nil
	}, nodecopy.Options[struct{}]{})
	return d
}

// Denied reports whether jti is revoked.
func (d *DenyList) Denied(ctx context.Context, jti string, now time.Time) (bool, error) {
	if _, err := d.loaded.Get(ctx); err != nil {
		return false, err
	}
	d.mu.RLock()
	until, ok := d.m[jti]
	d.mu.RUnlock()
	return ok && now.Before(until), nil
}

// Add records a denial (from EventDenied), pruning ended ones.
func (d *DenyList) Add(jti string, until time.Time) {
	d.mu.Lock()
	d.addLocked(jti, until)
	d.mu.Unlock()
}

func (d *DenyList) addLocked(jti string, until time.Time) {
	if old, ok := d.m[jti]; !ok || until.After(old) {
		d.m[jti] = until
	}
	if len(d.m)%256 == 0 {
		now := time.Now()
		for k, u := range d.m {
			if !now.Before(u) {
				delete(d.m, k)
			}
		}
	}
}

// Reset makes the next check reload the list (after EventReset).
func (d *DenyList) Reset() { d.loaded.Invalidate() }
