package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// AddOAuthCommands adds the `oauth` subcommands to cmd: OAuth keys
// (clients) and the signing settings.
func AddOAuthCommands(cmd *cobra.Command, connect Connect) {
	client := &cobra.Command{Use: "client", Short: "Manage OAuth keys (clients)"}

	add := &cobra.Command{
		Use:   "add <name> [--allow-ip <address|CIDR>]... [--scope <scope>]... [--disabled]",
		Short: "Add an OAuth key; prints its clientId and clientSecret (shown once)",
		Args:  cobra.ExactArgs(1),
	}
	addIPs := add.Flags().StringSlice("allow-ip", nil, "allowed client address or CIDR (repeatable; none: any address)")
	addScopes := add.Flags().StringSlice("scope", nil, "scope the key may be granted (repeatable)")
	addDisabled := add.Flags().Bool("disabled", false, "add the key switched off")
	add.RunE = func(c *cobra.Command, args []string) error {
		enabled := !*addDisabled
		body := map[string]any{"name": args[0], "allowed_ips": orNone(*addIPs), "scopes": orNone(*addScopes), "enabled": enabled}
		return call(c, connect, http.MethodPost, "/tokengate/oauth/clients", body, printJSON)
	}

	set := &cobra.Command{
		Use:   "set <clientId> [--enabled=true|false] [--name <name>] [--allow-ip <ip>]... [--scope <scope>]...",
		Short: "Switch an OAuth key on or off, rename it, or replace its allowed IPs or scopes",
		Args:  cobra.ExactArgs(1),
	}
	setEnabled := set.Flags().Bool("enabled", true, "switch the key on (true) or off (false)")
	setName := set.Flags().String("name", "", "new name")
	setIPs := set.Flags().StringSlice("allow-ip", nil, "replace the allowed IPs (--allow-ip '' allows any)")
	setScopes := set.Flags().StringSlice("scope", nil, "replace the scopes (--scope '' clears)")
	set.RunE = func(c *cobra.Command, args []string) error {
		return patch(c, connect, clientPath(args[0]), map[string]any{},
			flagMember{"enabled", "enabled", func() any { return *setEnabled }},
			flagMember{"name", "name", func() any { return *setName }},
			flagMember{"allow-ip", "allowed_ips", func() any { return nonEmpty(*setIPs) }},
			flagMember{"scope", "scopes", func() any { return nonEmpty(*setScopes) }})
	}

	client.AddCommand(add, set)
	client.AddCommand(resource{
		noun: "OAuth key", arg: "<clientId>", list: "/tokengate/oauth/clients", item: clientPath, printList: printClients,
		deleteShort: "Delete an OAuth key (its tokens stop working)",
	}.commands(connect)...)

	signing := &cobra.Command{Use: "signing", Short: "Show or change the access token signing settings"}
	change := &cobra.Command{
		Use:   "set [--algorithm HS256|RS256|ES256|EdDSA] [--reset] [--lifetime <seconds>] [--immediate] [--confirm]",
		Short: "Switch the algorithm, reset the key or set the token lifetime",
		Long: `Key changes (--algorithm, --reset) need --confirm. By default the old key keeps
verifying the tokens it signed until they expire (grace); with --immediate
they stop working at once. A new RS256/ES256/EdDSA key is published in the
JWKS for jwks_max_age before it signs.`,
		Args: cobra.NoArgs,
	}
	alg := change.Flags().String("algorithm", "", "new signing algorithm")
	reset := change.Flags().Bool("reset", false, "replace the signing key")
	lifetime := change.Flags().Int64("lifetime", 0, "access token lifetime in seconds")
	immediate := change.Flags().Bool("immediate", false, "tokens signed with the old key stop working at once")
	confirm := change.Flags().Bool("confirm", false, "I understand: apply the key change")
	change.RunE = func(c *cobra.Command, _ []string) error {
		body := map[string]any{"reset": *reset, "confirm": *confirm, "mode": "grace"}
		if *immediate {
			body["mode"] = "immediate"
		}
		if c.Flags().Changed("algorithm") {
			body["algorithm"] = *alg
		}
		if c.Flags().Changed("lifetime") {
			body["lifetime_seconds"] = *lifetime
		}
		return call(c, connect, http.MethodPost, "/tokengate/oauth/signing", body, printJSON)
	}
	signing.AddCommand(change, &cobra.Command{
		Use: "show", Short: "Show the algorithm, lifetime, validation key and keys", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return call(c, connect, http.MethodGet, "/tokengate/oauth/signing", nil, printJSON)
		},
	})
	cmd.AddCommand(client, signing)
}

func clientPath(id string) string { return "/tokengate/oauth/clients/" + url.PathEscape(id) }

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func printClients(w io.Writer, data []byte) error {
	var v struct {
		Clients []struct {
			ClientID   string   `json:"clientId"`
			Name       string   `json:"name"`
			AllowedIPs []string `json:"allowed_ips"`
			Scopes     []string `json:"scopes"`
			Enabled    bool     `json:"enabled"`
		} `json:"clients"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tNAME\tENABLED\tALLOWED IPS\tSCOPES")
	for _, c := range v.Clients {
		ips := strings.Join(c.AllowedIPs, ",")
		if ips == "" {
			ips = "any"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", c.ClientID, c.Name, c.Enabled, ips, strings.Join(c.Scopes, " "))
	}
	return tw.Flush()
}
