package oauthclient

import (
	"context"
	"errors"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/nodecopy"
	"github.com/tokengate/tokengate/internal/store"
)

// Table keeps this node's copy of the OAuth clients whose tokens it has
// seen, so that checking an access token needs no store round trip. A
// client is read from the store on first use and again after its
// EventClient (Invalidate).
type Table struct {
	m *nodecopy.Map[*Record]
}

// Record is a client as the edge needs it; nil means deleted.
type Record struct {
	store.Client
	// IPs is the parsed AllowedIPs (empty, and the client off, when the
	// stored list does not parse).
	IPs iplist.List
}

// NewTable returns an empty table.
func NewTable(s store.Clients) *Table {
	// A missing client is not remembered: anyone can send made-up ids,
	// which must not grow the table (the token endpoint's limits pace
	// the store reads they cost).
	exists := func(c *Record) bool { return c != nil }
	return &Table{m: nodecopy.NewMap(func(ctx context.Context, id string) (*Record, error) {
		return readClient(ctx, s, id)
	}, exists)}
}

// readClient reads a client from the store (nil if it does not exist).
func readClient(ctx context.Context, s store.Clients, id string) (*Record, error) {
	sc, err := s.GetClient(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, apierr.FromStore(err)
	}
	ips, err := iplist.Parse(sc.AllowedIPs)
	if err != nil {
		// A stored list that does not parse must not widen access.
		ips = iplist.List{}
		sc.Enabled = false
	}
	return &Record{Client: sc, IPs: ips}, nil
}

// Get returns the client (nil if it does not exist).
func (ct *Table) Get(ctx context.Context, id string) (*Record, error) {
	return ct.m.Get(ctx, id)
}

// Invalidate forgets one client (after its EventClient).
func (ct *Table) Invalidate(id string) { ct.m.Invalidate(id) }

// Clear forgets every client (after EventReset).
func (ct *Table) Clear() { ct.m.Clear() }
