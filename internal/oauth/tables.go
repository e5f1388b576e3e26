package oauth

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/store"
)

// ClientTable keeps this node's copy of the OAuth clients whose tokens it
// has seen, so that checking an access token needs no store round trip.
// A client is read from the store on first use and again after its
// EventClient (Invalidate).
type ClientTable struct {
	store store.Clients
	mu    sync.RWMutex
	m     map[string]*clientState
	gen   uint64
	group singleflight.Group
}

// clientState is a client as the edge needs it; nil means deleted.
type clientState struct {
	store.Client
	ips iplist.List
}

// NewClientTable returns an empty table.
func NewClientTable(s store.Clients) *ClientTable {
	return &ClientTable{store: s, m: make(map[string]*clientState)}
}

// Get returns the client (nil if it does not exist).
func (ct *ClientTable) Get(ctx context.Context, id string) (*clientState, error) {
	ct.mu.RLock()
	c, ok := ct.m[id]
	gen := ct.gen
	ct.mu.RUnlock()
	if ok {
		return c, nil
	}
	v, err, _ := ct.group.Do(id, func() (any, error) {
		sc, err := ct.store.GetClient(ctx, id)
		var c *clientState
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, apierr.FromStore(err)
		default:
			ips, err := iplist.Parse(sc.AllowedIPs)
			if err != nil {
				// A stored list that does not parse must not widen access.
				ips = iplist.List{}
				sc.Enabled = false
			}
			c = &clientState{Client: sc, ips: ips}
		}
		// A missing client is not remembered: anyone can send made-up ids,
		// which must not grow the table (the token endpoint's limits pace
		// the store reads they cost).
		ct.mu.Lock()
		if ct.gen == gen && c != nil { // no invalidation while we read
			ct.m[id] = c
		}
		ct.mu.Unlock()
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*clientState), nil
}

// Invalidate forgets one client (after its EventClient).
func (ct *ClientTable) Invalidate(id string) {
	ct.mu.Lock()
	ct.gen++
	delete(ct.m, id)
	ct.mu.Unlock()
}

// Clear forgets every client (after EventReset).
func (ct *ClientTable) Clear() {
	ct.mu.Lock()
	ct.gen++
	clear(ct.m)
	ct.mu.Unlock()
}

// DenyList is this node's copy of the revoked access tokens (by jti),
// loaded from the store once and then kept current by EventDenied.
type DenyList struct {
	store  store.Denials
	mu     sync.RWMutex
	m      map[string]time.Time
	loaded bool
	gen    uint64
	group  singleflight.Group
}

// NewDenyList returns a deny-list that loads itself on first use.
func NewDenyList(s store.Denials) *DenyList {
	return &DenyList{store: s, m: make(map[string]time.Time)}
}

// Denied reports whether jti is revoked.
func (d *DenyList) Denied(ctx context.Context, jti string, now time.Time) (bool, error) {
	d.mu.RLock()
	until, ok := d.m[jti]
	loaded, gen := d.loaded, d.gen
	d.mu.RUnlock()
	if loaded {
		return ok && now.Before(until), nil
	}
	_, err, _ := d.group.Do("load", func() (any, error) {
		list, err := d.store.ListDenied(ctx)
		if err != nil {
			return nil, apierr.FromStore(err)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, x := range list {
			d.addLocked(x.JTI, x.Until)
		}
		if d.gen == gen {
			d.loaded = true
		}
		return nil, nil
	})
	if err != nil {
		return false, err
	}
	d.mu.RLock()
	until, ok = d.m[jti]
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
func (d *DenyList) Reset() {
	d.mu.Lock()
	d.gen++
	d.loaded = false
	d.mu.Unlock()
}
