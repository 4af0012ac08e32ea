Blog_probJq“σΐEfΧΐΑΨsΐ¨‡ΐΈ(
Αz’άΐεθ‚ΐ