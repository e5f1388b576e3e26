package caddymodule

import (
	"io"
	"net/http"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/internal/cli"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "user",
		Usage: "add|list|show|set|delete|tokens|revoke ...",
		Short: "Manage tokengate users and their tokens",
		Long: `Manage tokengate users through the admin API of a running gateway.
The admin address comes from --address, or from the admin setting of --config.`,
		CobraFunc: func(cmd *cobra.Command) {
			adminFlags(cmd)
			cli.AddUserCommands(cmd, connect)
		},
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "oauth",
		Usage: "client add|list|show|set|delete ... | signing show|set ...",
		Short: "Manage OAuth keys and the access token signing settings",
		Long: `Manage OAuth keys (clients) and the signing settings through the admin API
of a running gateway. The admin address comes from --address, or from the
admin setting of --config.`,
		CobraFunc: func(cmd *cobra.Command) {
			adminFlags(cmd)
			cli.AddOAuthCommands(cmd, connect)
		},
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "acl",
		Usage: "grant|revoke (--role <role> | --user <name>) --p <permission> --res <resource> | list",
		Short: "Grant and revoke permissions (e.g. USE on ws:::gen-ws-token)",
		Long: `Grant and revoke permissions through the admin API of a running gateway,
e.g. the right to get a legacy token from /rest/token:

  tokengate acl grant --role ws-users --p USE --res ws:::gen-ws-token`,
		CobraFunc: func(cmd *cobra.Command) {
			adminFlags(cmd)
			cli.AddACLCommands(cmd, connect)
		},
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "legacy",
		Usage: "tokens",
		Short: "Show legacy tokens and their last use",
		CobraFunc: func(cmd *cobra.Command) {
			adminFlags(cmd)
			cli.AddLegacyCommands(cmd, connect)
		},
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "store",
		Usage: "check [--repair]",
		Short: "Check the tokengate store for inconsistencies",
		Long: `Check the store of a running gateway for what a crash may leave between
a token's record and its hash index (Redis Cluster writes them in two steps),
and repair it with --repair.`,
		CobraFunc: func(cmd *cobra.Command) {
			adminFlags(cmd)
			cli.AddStoreCommands(cmd, connect)
		},
	})
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
