/*
 * mkpki.c - makes a throw-away organisation with one device (org.pub,
 * directory) and a relay identity (data/handshake.key, relay.cert for relay id
 * valise-relay) and prints its directory.
 */
#include <stdio.h>

#include "relaytest.h"

int main(void)
{
    struct tpki p;
    struct tdev a;
    const struct tdev *devs[1] = {&a};

    if (tpki_init(&p) != 0 || tdev_make(&p, &a, 1, tnow() - 60, tnow() + 86400) != 0 ||
        tpki_write_dir(&p, 1, devs, 1, NULL, 0) != 0 ||
        tpki_relay_cert(&p, p.data_path, "valise-relay", tnow() - 60, tnow() + 86400,
                        p.relaycert_path) != 0)
        return 1;
    printf("%s\n", p.dir);
    return 0;
}
