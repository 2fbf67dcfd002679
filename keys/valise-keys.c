/* valise-keys - IT staff's provisioning tool (in progress). */
#include <stdio.h>

int main(void)
{
    fputs("valise-keys: not built yet\n", stderr);
    return 1;
}
