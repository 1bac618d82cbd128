/* Headers ferrovs binds. Generated at build time against the installed DPDK: its
 * RTE_MAX_LCORE / RTE_MAX_ETHPORTS and struct layouts come from the distribution. */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_version.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include "shim.h"
