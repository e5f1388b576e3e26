package oauth

import (
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
)

func TestSeedJSONIsStrict(t *testing.T) {
	tests := []struct {
		name, body, field string
		ok                bool
	}{
		{"seed form", `{"clientId":"tgc_1","clientSecret":"s"}`, "", true},
		{"with scope", `{"clientId":"tgc_1","clientSecret":"s","scope":"read"}`, "", true},
		{"repeated member", `{"clientId":"tgc_1","clientId":"tgc_2","clientSecret":"s"}`, "clientId", false},
		{"other case", `{"clientId":"tgc_1","CLIENTSECRET":"s"}`, "CLIENTSECRET", false},
		{"unknown member", `{"clientId":"tgc_1","clientSecret":"s","admin":true}`, "admin", false},
		{"number", `{"clientId":1,"clientSecret":"s"}`, "clientId", false},
		{"trailing data", `{"clientId":"tgc_1","clientSecret":"s"} {}`, "", false},
		{"not an object", `["clientId"]`, "", false},
		{"truncated", `{"clientId":"tgc_1"`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := seedJSON([]byte(tt.body))
			if (err == nil) != tt.ok {
				t.Fatalf("seedJSON(%s) = %v", tt.body, err)
			}
			if err != nil {
				p := apierr.For(err)
				if p.Status != 400 || p.Field != tt.field {
					t.Fatalf("got %d field %q, want 400 field %q", p.Status, p.Field, tt.field)
				}
			}
		})
	}
}
