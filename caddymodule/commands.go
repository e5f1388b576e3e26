package caddymodule

import (
	"io"
	"net/http"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/internal/cli"
)

func init() {
	registerAdminCommand(caddycmd.Command{
		Name:  "user",
		Usage: "add|list|show|set|delete|tokens|revoke ...",
		Short: "Manage tokengate users and their tokens",
		Long: `Manage tokengate users through the admin API of a running gateway.
The admin address comes from --address, or from the admin setting of --config.`,
	}, cli.AddUserCommands)
	registerAdminCommand(caddycmd.Command{
		Name:  "oauth",
		Usage: "client add|list|show|set|delete ... | signing show|set ...",
		Short: "Manage OAuth keys and the access token signing settings",
		Long: `Manage OAuth keys (clients) and the signing settings through the admin API
of a running gateway. The admin address comes from --address, or from the
admin setting of --config.`,
	}, cli.AddOAuthCommands)
	registerAdminCommand(caddycmd.Command{
		Name:  "acl",
		Usage: "grant|revoke (--role <role> | --user <name>) --p <permission> --res <resource> | list",
		Short: "Grant and revoke permissions (e.g. USE on ws:::gen-ws-token)",
		Long: `Grant and revoke permissions through the admin API of a running gateway,
e.g. the right to get a legacy token from /rest/token:

  tokengate acl grant --role ws-users --p USE --res ws:::gen-ws-token`,
	}, cli.AddACLCommands)
	registerAdminCommand(caddycmd.Command{
		Name:  "legacy",
		Usage: "tokens",
		Short: "Show legacy tokens and their last use",
	}, cli.AddLegacyCommands)
	registerAdminCommand(caddycmd.Command{
		Name:  "tokens",
		Usage: "expiring [--within 30d]",
		Short: "List the tokens that expire or go dormant soon",
		Long: `List the tokens (personal and legacy, switched on) that expire or that the
token_policy's dormancy rule switches off within the period, nearest first,
and those that live beyond the policy's maximum lifetime (made before it).`,
	}, cli.AddTokensCommands)
	registerAdminCommand(caddycmd.Command{
		Name:  "store",
		Usage: "check [--repair] | export [--output <file>] | import [--input <file>]",
		Short: "Check, export or import the tokengate store",
		Long: `Check the store of a running gateway for what a crash may leave between
a token's record and its hash index (Redis Cluster writes them in two steps),
and repair it with --repair.

Export the whole store as one JSON document, and import such a document into
the empty store of another gateway: from the embedded store to Redis or back,
without new tokens for anyone.`,
	}, cli.AddStoreCommands)
	registerAdminCommand(caddycmd.Command{
		Name:  "assertion-keys",
		Usage: "show | rotate (--grace | --immediate) [--algorithm ES256|RS256|EdDSA]",
		Short: "Show or rotate the keys that sign identity assertions",
		Long: `Show or rotate the gateway's identity assertion keys (the identity_assertion
site option) through the admin API of a running gateway. The admin address
comes from --address, or from the admin setting of --config.`,
	}, cli.AddAssertionKeyCommands)
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "secrets-key",
		Usage: "generate",
		Short: "Generate a key for the secrets_key option",
		Long: `Generate a key for the secrets_key option, which encrypts the signing keys
in the store (32 random bytes in base64). Works offline.`,
		CobraFunc: cli.AddSecretsKeyCommands,
	})
}

// registerAdminCommand registers a subcommand that talks to a running
// gateway's admin API: its flags say where (--address, --config, --adapter)
// and add builds its subcommands.
func registerAdminCommand(c caddycmd.Command, add func(*cobra.Command, cli.Connect)) {
	c.CobraFunc = func(cmd *cobra.Command) {
		adminFlags(cmd)
		add(cmd, connect)
	}
	caddycmd.RegisterCommand(c)
}

func adminFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().String("address", "", "the admin API address (default: from --config, else localhost:2019)")
	cmd.PersistentFlags().StringP("config", "c", "", "the config file whose admin address to use")
	cmd.PersistentFlags().StringP("adapter", "a", "", "the adapter of the config file")
}

// connect resolves the admin address the way `caddy reload` does.
func connect(cmd *cobra.Command) (cli.Requester, error) {
	address, _ := cmd.Flags().GetString("address")
	configFile, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, configFile, adapter)
	if err != nil {
		return nil, err
	}
	return func(method, uri string, body io.Reader) (*http.Response, error) {
		return caddycmd.AdminAPIRequest(addr, method, uri, nil, body)
	}, nil
}
