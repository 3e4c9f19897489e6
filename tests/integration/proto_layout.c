/* SPDX-License-Identifier: MIT */
/*
 * Prints, as JSON, the protocol's and the arena's message layouts as the
 * compiler sees them in src/proto.h and src/arena.h: constants, message
 * types, and each struct's size and fields (offset, size, signedness).  The
 * Python tests that speak the raw protocol (thpswap_peer.py) build and read
 * messages from this, so their layouts cannot drift from the C ones.
 */
#include <stddef.h>
#include <stdio.h>

#include "arena.h"
#include "proto.h"

static int first;

static void field(const char *name, size_t off, size_t size, int is_signed)
{
	printf("%s\"%s\": [%zu, %zu, %d]", first ? "" : ", ", name, off, size, is_signed);
	first = 0;
}

#define SIGNED(x) _Generic((x), int8_t: 1, int16_t: 1, int32_t: 1, int64_t: 1, default: 0)
#define F(T, f) field(#f, offsetof(struct T, f), sizeof(((struct T *)0)->f), \
		      SIGNED(((struct T *)0)->f))
/* char arrays and flexible arrays: offset and size of one element */
#define A(T, f) field(#f, offsetof(struct T, f), sizeof(((struct T *)0)->f[0]), 0)
#define S(T, ...) do { printf(",\n  \"%s\": {\"size\": %zu, \"fields\": {", #T, \
			      sizeof(struct T)); first = 1; __VA_ARGS__; printf("}}"); } while (0)

int main(void)
{
	printf("{\"consts\": {\"THP_PROTO_MAGIC\": %u, \"THP_PROTO_VERSION\": %u, "
	       "\"THP_MSG_MAX\": %u, \"THP_EVICT_MAX\": %u, \"THP_ROLE_CLIENT\": %u, "
	       "\"THP_ROLE_CTL\": %u, \"THP_ST_RESIDENT\": %u, \"THP_REGION_BYTES\": %lu, "
	       "\"THP_L__MAX\": %u, \"THP_CLIENTS_MAX\": %u, \"THP_REGIONS_MAX\": %u, \"THP_C_REGIONS\": %u},\n", THP_PROTO_MAGIC, THP_PROTO_VERSION, THP_MSG_MAX,
	       THP_EVICT_MAX, THP_ROLE_CLIENT, THP_ROLE_CTL, THP_ST_RESIDENT, THP_REGION_BYTES,
	       THP_L__MAX, THP_CLIENTS_MAX, THP_REGIONS_MAX,
	       THP_C_REGIONS);
	printf(" \"types\": {");
	for (unsigned t = 1; t < THP_MSG__MAX; t++)
		printf("%s\"%s\": %u", t > 1 ? ", " : "", thp_msg_type_name(t), t);
	printf("},\n \"limits\": {");
	for (unsigned i = 0; i < THP_L__MAX; i++)
		printf("%s\"%s\": %u", i ? ", " : "", thp_limit_name(i), i);
	printf("},\n \"structs\": {\"_\": {\"size\": 0, \"fields\": {}}");
	S(thp_msg_hdr, F(thp_msg_hdr, magic); F(thp_msg_hdr, version); F(thp_msg_hdr, type);
	  F(thp_msg_hdr, len); F(thp_msg_hdr, seq));
	S(thp_msg_error, F(thp_msg_error, err); A(thp_msg_error, text));
	S(thp_msg_hello, F(thp_msg_hello, role); F(thp_msg_hello, max_regions);
	  F(thp_msg_hello, want_features); A(thp_msg_hello, comm));
	S(thp_msg_welcome, F(thp_msg_welcome, session_id); F(thp_msg_welcome, uffd_features);
	  F(thp_msg_welcome, arena_size); F(thp_msg_welcome, daemon_pid));
	S(thp_msg_evict, F(thp_msg_evict, reason); F(thp_msg_evict, n); A(thp_msg_evict, addr));
	S(thp_msg_evict_done, F(thp_msg_evict_done, evicted); F(thp_msg_evict_done, skipped);
	  F(thp_msg_evict_done, failed); F(thp_msg_evict_done, bytes_in);
	  F(thp_msg_evict_done, bytes_stored));
	S(thp_msg_evict_req, F(thp_msg_evict_req, pid); F(thp_msg_evict_req, addr);
	  F(thp_msg_evict_req, len));
	S(thp_msg_status_reply, F(thp_msg_status_reply, daemon_pid);
	  F(thp_msg_status_reply, clients));
	S(thp_msg_clients_page, F(thp_msg_clients_page, after));
	S(thp_msg_clients_reply, F(thp_msg_clients_reply, n); F(thp_msg_clients_reply, more);
	  A(thp_msg_clients_reply, c));
	S(thp_client_info, F(thp_client_info, pid); F(thp_client_info, uid);
	  F(thp_client_info, session_id); F(thp_client_info, regions); A(thp_client_info, comm));
	S(thp_msg_regions, F(thp_msg_regions, pid); F(thp_msg_regions, cursor));
	S(thp_msg_regions_reply, F(thp_msg_regions_reply, next); F(thp_msg_regions_reply, n);
	  A(thp_msg_regions_reply, r));
	S(thp_region_info, F(thp_region_info, addr); F(thp_region_info, state));
	S(thp_msg_stats, F(thp_msg_stats, pid));
	S(thp_msg_pin_req, F(thp_msg_pin_req, pid); F(thp_msg_pin_req, pin);
	  F(thp_msg_pin_req, addr); F(thp_msg_pin_req, len));
	S(thp_msg_pin_reply, F(thp_msg_pin_reply, regions));
	S(thp_msg_policy_page, F(thp_msg_policy_page, after); F(thp_msg_policy_page, pid));
	S(thp_msg_limits_reply, F(thp_msg_limits_reply, n_counters);
	  A(thp_msg_limits_reply, ctr); F(thp_msg_limits_reply, max_conns_per_uid);
	  F(thp_msg_limits_reply, hello_timeout_ms); F(thp_msg_limits_reply, evict_queue);
	  F(thp_msg_limits_reply, evict_timeout_s));
	S(thp_arena_header, F(thp_arena_header, magic); F(thp_arena_header, max_regions);
	  F(thp_arena_header, records_off); F(thp_arena_header, size); A(thp_arena_header, ctr));
	S(thp_record, F(thp_record, state); F(thp_record, addr));
	printf("}}\n");
	return 0;
}
