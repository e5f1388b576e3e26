# Build your own Caddy with tokengate (and any other plugins you use):
#
#   docker build -f xcaddy.Dockerfile -t caddy-tokengate .
#
# or without Docker:
#
#   xcaddy build --with github.com/tokengate/tokengate
FROM caddy:2-builder AS builder
RUN xcaddy build \
	--with github.com/tokengate/tokengate

FROM caddy:2
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
