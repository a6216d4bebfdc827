/* CUnit: the known USB id table (farm/usbids.c). */
#include <CUnit/CUnit.h>
#include <string.h>

#include "usbids.h"

static void test_lookup(void)
{
	const struct farm_usbid *u = farm_usbid_lookup(0x2e8a, 0x0003, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->role, FARM_USBID_BOOTLOADER);
	CU_ASSERT_EQUAL(u->boot, FARM_USBID_BOOT_UF2);
	CU_ASSERT_TRUE(farm_usbid_serves_port(u, "rp2"));
	CU_ASSERT_EQUAL(farm_usbid_lookup(0x2e8a, 0x000f, NULL)->boot, FARM_USBID_BOOT_UF2);
	CU_ASSERT_EQUAL(farm_usbid_lookup(0x2e8a, 0x0005, "X")->role, FARM_USBID_APP);
	u = farm_usbid_lookup(0x0483, 0xdf11, NULL);
	CU_ASSERT_EQUAL(u->role, FARM_USBID_BOOTLOADER);
	CU_ASSERT_EQUAL(u->boot, FARM_USBID_BOOT_DFU);
	u = farm_usbid_lookup(0x303a, 0x1001, NULL);
	CU_ASSERT_EQUAL(u->role, FARM_USBID_BRIDGE);
	CU_ASSERT_EQUAL(u->boot, FARM_USBID_BOOT_ESP_ROM);
	/* A board-specific Espressif pid: the vendor's catch-all. */
	u = farm_usbid_lookup(0x303a, 0x8123, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->pid, FARM_USBID_ANY_PID);
	CU_ASSERT_TRUE(farm_usbid_serves_port(u, "esp32"));
	CU_ASSERT_EQUAL(farm_usbid_lookup(0xf055, 0x9800, NULL)->role, FARM_USBID_APP);
	CU_ASSERT_EQUAL(farm_usbid_lookup(0x10c4, 0xea60, NULL)->role, FARM_USBID_BRIDGE);
	CU_ASSERT_EQUAL(farm_usbid_lookup(0x1a86, 0x55d4, NULL)->role, FARM_USBID_BRIDGE);
	CU_ASSERT_EQUAL(farm_usbid_lookup(0x0403, 0x6015, NULL)->role, FARM_USBID_BRIDGE);
	CU_ASSERT_PTR_NULL(farm_usbid_lookup(0x1234, 0x5678, NULL));
	CU_ASSERT_PTR_NULL(farm_usbid_lookup(0x10c4, 0x0001, NULL)); /* no catch-all for bridges */
}

static void test_openmv_by_serial(void)
{
	const struct farm_usbid *u = farm_usbid_lookup(0x1209, 0xabd1, "000000000010");
	CU_ASSERT_EQUAL(u->role, FARM_USBID_BOOTLOADER);
	CU_ASSERT_EQUAL(u->boot, FARM_USBID_BOOT_OPENMV);
	CU_ASSERT_EQUAL(farm_usbid_lookup(0x1209, 0xabd1, "000000000011")->role, FARM_USBID_BOOTLOADER);
	CU_ASSERT_EQUAL(farm_usbid_lookup(0x1209, 0xabd1, "3A0051000651")->role, FARM_USBID_APP);
	CU_ASSERT_EQUAL(farm_usbid_lookup(0x1209, 0xabd1, NULL)->role, FARM_USBID_APP);
}

static void test_names(void)
{
	CU_ASSERT_STRING_EQUAL(farm_usbid_role_name(FARM_USBID_BRIDGE), "usb-uart");
	CU_ASSERT_STRING_EQUAL(farm_usbid_role_name(FARM_USBID_UNKNOWN), "unknown");
	CU_ASSERT_STRING_EQUAL(farm_usbid_boot_name(FARM_USBID_BOOT_ESP_ROM), "esp-rom");
	CU_ASSERT_STRING_EQUAL(farm_usbid_boot_name(FARM_USBID_BOOT_NONE), "none");
	char p[16];
	farm_usbid_first_port(farm_usbid_lookup(0x1209, 0xabd1, NULL), p, sizeof p);
	CU_ASSERT_STRING_EQUAL(p, "stm32");
	farm_usbid_first_port(farm_usbid_lookup(0x10c4, 0xea60, NULL), p, sizeof p);
	CU_ASSERT_STRING_EQUAL(p, "");
	CU_ASSERT_TRUE(farm_usbid_serves_port(farm_usbid_lookup(0x10c4, 0xea60, NULL), "esp8266"));
	CU_ASSERT_FALSE(farm_usbid_serves_port(farm_usbid_lookup(0x2e8a, 3, NULL), "rp"));
}

/* Every entry is well formed, no two entries claim the same device, and
 * every MicroPython port named is one the inventory accepts. */
static void test_table_sane(void)
{
	static const char *const ports[] = { "rp2", "stm32", "esp32", "esp8266", "nrf", "samd",
					     "mimxrt", "renesas-ra", "cc3200", "unix", NULL };
	const struct farm_usbid *t = farm_usbid_all();
	size_t n = 0;
	for (const struct farm_usbid *u = t; u->name; u++, n++) {
		CU_ASSERT_TRUE(u->name[0] != '\0');
		CU_ASSERT_TRUE(u->vid > 0 && u->vid <= 0xffff);
		CU_ASSERT_TRUE(u->pid <= 0xffff || u->pid == FARM_USBID_ANY_PID);
		CU_ASSERT_NOT_EQUAL(u->role, FARM_USBID_UNKNOWN);
		for (const struct farm_usbid *w = t; w != u; w++)
			CU_ASSERT_FALSE(w->vid == u->vid && w->pid == u->pid &&
					((!w->serial && !u->serial) ||
					 (w->serial && u->serial && !strcmp(w->serial, u->serial))));
		for (const char *p = u->ports; p && *p;) {
			size_t len = strcspn(p, ",");
			int ok = 0;
			for (size_t i = 0; ports[i]; i++)
				ok |= strlen(ports[i]) == len && !strncmp(ports[i], p, len);
			CU_ASSERT_TRUE(ok);
			p += len + (p[len] == ',');
		}
		/* The entry itself is what lookup returns for its ids. */
		if (u->pid != FARM_USBID_ANY_PID)
			CU_ASSERT_PTR_EQUAL(farm_usbid_lookup(u->vid, u->pid, u->serial), u);
	}
	CU_ASSERT_TRUE(n >= 30);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("usbids", NULL, NULL);
	if (!s)
		return -1;
	CU_add_test(s, "lookup", test_lookup);
	CU_add_test(s, "OpenMV bootloader by serial", test_openmv_by_serial);
	CU_add_test(s, "names", test_names);
	CU_add_test(s, "table sane", test_table_sane);
	return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
