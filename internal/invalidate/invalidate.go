// Package invalidate applies store events to everything a node caches:
// the decision cache, the OAuth client table, the deny-list, the keyring
// and the ACL. It is the one place that knows which event drops what.
package invalidate

import (
	"strings"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
)

// Targets are a node's caches.
type Targets struct {
	Cache   *cache.Cache
	Clients *oauthclient.Table
	Denied  *accesstoken.DenyList
	Keys    *keyring.Holder
	ACL     *acl.ACL
	// AssertionKeys, if set, drops this node's copy of the identity
	// assertion keyring kept in the named document ("": all of them).
	AssertionKeys func(doc string)
	// Metrics counts the events by kind (nil: not counted). Counting
	// here, where both backends deliver, covers both.
	Metrics *metrics.Set
}

// EventName is the kind label of an event of kind k.
func EventName(k store.EventKind) string {
	switch k {
	case store.EventToken:
		return "token"
	case store.EventUser:
		return "user"
	case store.EventReset:
		return "reset"
	case store.EventClient:
		return "client"
	case store.EventDocument:
		return "document"
	case store.EventDenied:
		return "denied"
	}
	return "unknown"
}

// Handle drops what ev makes stale. Pass it to store.Subscribe; it does
// no I/O (reloads happen lazily on the next use).
func (t Targets) Handle(ev store.Event) {
	t.Metrics.Event(EventName(ev.Kind))
	switch ev.Kind {
	case store.EventToken:
		t.Cache.Invalidate(ev.Hash)
	case store.EventUser:
		t.Cache.InvalidateOwner(ev.Owner)
	case store.EventClient:
		t.Clients.Invalidate(ev.ID)
		t.Cache.InvalidateOwner(accesstoken.ClientOwner(ev.ID))
	case store.EventDenied:
		t.Denied.Add(ev.ID, ev.Until)
		t.Cache.InvalidateMatching(accesstoken.IsAccessToken(ev.ID))
	case store.EventDocument:
		switch ev.ID {
		case store.DocKeyring:
			// A retired key must stop verifying at once, and a newly known
			// kid may turn a cached refusal into a valid token: start over.
			t.Keys.Invalidate()
			t.Cache.Clear()
		case store.DocACL:
			t.ACL.Invalidate()
		default:
			if strings.HasPrefix(ev.ID, store.DocAssertionKeysPrefix) && t.AssertionKeys != nil {
				t.AssertionKeys(ev.ID)
			}
		}
	default: // EventReset and anything unknown: assume everything changed
		t.Keys.Invalidate()
		t.ACL.Invalidate()
		t.Clients.Clear()
		t.Denied.Reset()
		t.Cache.Clear()
		if t.AssertionKeys != nil {
			t.AssertionKeys("")
		}
	}
}
