/* Shared CUnit main: each test_<module>.c defines cu_register(), which adds its suites. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

int cu_register(void);

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	if (cu_register() != 0) {
		fprintf(stderr, "test registration failed: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	unsigned run = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	if (run == 0) {
		fprintf(stderr, "no test ran\n");
		return 1;
	}
	return failed ? 1 : 0;
}
